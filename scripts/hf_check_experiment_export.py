"""transformers + PEFT on a folder written by ``prefix-theory export --experiment-checkpoint``.

Runs in the oracle's venv (``make oracle-fixtures`` makes ``.venv-oracle``)::

    .venv-oracle/bin/python scripts/hf_check_experiment_export.py OUT

loads ``OUT/model`` with ``GPT2LMHeadModel`` and ``OUT/adapter`` with ``PeftModel``, runs the
token ids of ``OUT/reference.npz`` and prints the largest difference from its ``logits`` (the
experiment's own forward pass, float32) and, as a negative control, that of the base model
without the adapter.
"""

import sys

import numpy as np
import torch
from peft import PeftModel
from transformers import GPT2LMHeadModel


def main(out: str) -> None:
    ref = np.load(f"{out}/reference.npz")
    base = GPT2LMHeadModel.from_pretrained(f"{out}/model").eval()
    model = PeftModel.from_pretrained(base, f"{out}/adapter").eval()
    ids = torch.tensor(ref["ids"], dtype=torch.long)
    n = ref["logits"].shape[1]
    with torch.no_grad():
        # prompt tuning also returns the virtual positions: the content is the last n
        got = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.numpy()[:, -n:]
        plain = base(input_ids=ids).logits.numpy()
    diff, control = np.abs(got - ref["logits"]).max(), np.abs(plain - ref["logits"]).max()
    print(f"transformers + PEFT vs the experiment: max |logit diff| {diff:.2e}")
    print(f"negative control, base model without the adapter: {control:.2e}")


if __name__ == "__main__":
    main(sys.argv[1])
