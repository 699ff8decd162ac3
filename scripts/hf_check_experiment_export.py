"""transformers + PEFT on a folder written by ``prefix-theory export --experiment-checkpoint``.

Runs in the oracle's venv (``make oracle-fixtures`` makes ``.venv-oracle``)::

    .venv-oracle/bin/python scripts/hf_check_experiment_export.py OUT [--record]

loads ``OUT/model`` with ``GPT2LMHeadModel`` and ``OUT/adapter`` with ``PeftModel``, runs the
token ids of ``OUT/reference.npz`` and prints the largest difference from its ``logits`` (the
experiment's own forward pass, float32) and, as a negative control, that of the base model
without the adapter. ``--record`` also writes what transformers + PEFT computed to
``OUT/oracle.npz`` (``peft_logits``, ``plain_logits``) and the versions to ``OUT/oracle.json``:
the committed fixture ``tests/fixtures/hf/experiment_prefix`` that ``tests/test_interop_export.py``
compares the toolkit with. Exit 1 when the adapter's logits differ by more than 1e-5 or the
control by less than 1e-3.
"""

import json
import sys

import numpy as np
import peft
import torch
import transformers
from peft import PeftModel
from transformers import GPT2LMHeadModel

PARITY = 1e-5  # float32, as the other fixtures
CONTROL = 1e-3  # without the adapter the logits must move at least this much


def main(out: str, record: bool) -> int:
    torch.manual_seed(0)
    ref = np.load(f"{out}/reference.npz")
    base = GPT2LMHeadModel.from_pretrained(f"{out}/model").eval()
    model = PeftModel.from_pretrained(base, f"{out}/adapter").eval()
    ids = torch.tensor(ref["ids"], dtype=torch.long)
    n = ref["logits"].shape[1]
    with torch.no_grad():
        # prompt tuning also returns the virtual positions: the content is the last n
        got = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.numpy()[:, -n:]
        with model.disable_adapter():
            plain = model(input_ids=ids).logits.numpy()
    diff, control = np.abs(got - ref["logits"]).max(), np.abs(plain - ref["logits"]).max()
    print(f"transformers + PEFT vs the experiment: max |logit diff| {diff:.2e}")
    print(f"negative control, base model without the adapter: {control:.2e}")
    if record:
        np.savez(f"{out}/oracle.npz", peft_logits=got, plain_logits=plain)
        versions = {"torch": torch.__version__, "transformers": transformers.__version__}
        versions["peft"] = peft.__version__
        with open(f"{out}/oracle.json", "w") as fh:
            json.dump({"versions": versions, "max_diff": float(diff)}, fh, indent=1)
            fh.write("\n")
    return 0 if diff <= PARITY and control >= CONTROL else 1


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--record"]
    sys.exit(main(args[0], "--record" in sys.argv[1:]))
