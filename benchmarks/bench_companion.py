"""A PyTorch reference for ``bench_training.py``: the same training steps in a minGPT-style model.

Runs in the oracle environment ``.venv-oracle`` (``make .venv-oracle/.installed``; the
toolkit never imports torch). ``bench_training.py`` calls it in a subprocess, so the JAX
trainer and a PyTorch one are timed on the same machine in the same run, and the speed-up is
a ratio of two figures measured together.

It mirrors the paper's companion code (minGPT, float32, Adam, batch 64) and this toolkit's
step kinds; it is written for this benchmark, not taken from that code:

* model: learned token and position embeddings, pre-LN blocks (fused ``c_attn`` projection to
  queries, keys and values, causal softmax attention, ``c_proj``; MLP ``c_fc``, tanh GELU,
  ``c_proj``), a final LayerNorm and an unbiased head;
* sequence: ``n_p`` virtual positions, then 19 content tokens; the loss is the cross-entropy of
  the last 10 content outputs;
* ``pretrain``: every parameter trained, the virtual positions are token 0 (a zero prompt);
* ``prefix``: the model frozen, each block's input at the virtual positions replaced by a
  trained ``[n_layers, n_p, d]`` tensor;
* ``lora``: the model frozen, rank-1 updates ``x W + (x A) B`` on ``c_fc`` and both ``c_proj``.

Frozen weights have ``requires_grad=False``, so no weight gradient is computed for them (the
companion code computes them, which makes its prefix and LoRA figures slower than these).

The sizes come from ``bench_training.py`` in ``--spec`` (JSON), so both time the same models:
``{"vocab", "n_ctx", "content", "outputs", "kinds": {name: [method, n_layers, n_heads,
d_model, n_p]}}`` with method one of ``pretrain``, ``prefix``, ``lora``.

    .venv-oracle/bin/python benchmarks/bench_companion.py --spec JSON --json FILE
        [--rounds 3] [--chunk 10]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn
from torch.nn import functional as F

METHODS = ("pretrain", "prefix", "lora")


class LowRank(nn.Module):
    """``x W + b + (x A) B`` with ``W``, ``b`` frozen and rank-r ``A``, ``B`` trained."""

    def __init__(self, linear: nn.Linear, rank: int):
        super().__init__()
        self.linear = linear
        d_in, d_out = linear.in_features, linear.out_features
        self.A = nn.Parameter(torch.randn(d_in, rank) / d_in**0.5)
        self.B = nn.Parameter(torch.zeros(rank, d_out))

    def forward(self, x):
        return self.linear(x) + (x @ self.A) @ self.B


class Block(nn.Module):
    def __init__(self, d: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.attn_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x, causal):
        b, n, d = x.shape
        q, k, v = self.c_attn(self.ln1(x)).split(d, dim=2)
        q, k, v = (t.view(b, n, self.n_heads, d // self.n_heads).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / (k.shape[-1] ** 0.5)
        att = F.softmax(att.masked_fill(~causal, float("-inf")), dim=-1)
        x = x + self.attn_proj((att @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, n_layers: int, n_heads: int, d: int, vocab: int, n_ctx: int):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(n_ctx, d)
        self.blocks = nn.ModuleList(Block(d, n_heads) for _ in range(n_layers))
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)

    def forward(self, tokens, states=None):
        """Logits of ``tokens [b, n]``; ``states [n_layers, n_p, d]`` replace each block's input
        at the first ``n_p`` positions (a prefix)."""
        n = tokens.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool).tril()
        x = self.wte(tokens) + self.wpe(torch.arange(n))
        for layer, block in enumerate(self.blocks):
            if states is not None:
                n_p = states.shape[1]
                x = torch.cat([states[layer].expand(x.shape[0], n_p, -1), x[:, n_p:]], dim=1)
            x = block(x, causal)
        return self.head(self.ln_f(x))


def make_step(spec: dict, kind: str, batch: int, chunk: int, seed: int = 0):
    """``(run_chunk, n_trainable)`` of ``spec["kinds"][kind]``: ``run_chunk()`` runs ``chunk``
    Adam steps."""
    torch.manual_seed(seed)
    method, n_layers, n_heads, d, n_p = spec["kinds"][kind]
    vocab, outputs = spec["vocab"], spec["outputs"]
    model = GPT(n_layers, n_heads, d, vocab, spec["n_ctx"])
    states = None
    if method == "pretrain":
        params = list(model.parameters())
    else:
        model.requires_grad_(False)
        if method == "prefix":
            states = nn.Parameter(0.02 * torch.randn(n_layers, n_p, d))
            params = [states]
        else:
            params = []
            for block in model.blocks:
                for name in ("c_fc", "mlp_proj", "attn_proj"):
                    low = LowRank(getattr(block, name), rank=1)
                    setattr(block, name, low)
                    params += [low.A, low.B]
    optimizer = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(seed)
    data = [
        torch.cat(
            [
                torch.zeros(batch, n_p, dtype=torch.long),
                torch.randint(0, vocab, (batch, spec["content"] + 1), generator=gen),
            ],
            dim=1,
        )
        for _ in range(chunk)
    ]

    def run_chunk():
        for seqs in data:
            logits = model(seqs[:, :-1], states)[:, -outputs:]
            loss = F.cross_entropy(logits.reshape(-1, vocab), seqs[:, -outputs:].reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
        return float(loss.detach())

    return run_chunk, sum(p.numel() for p in params)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", required=True, help="the models to time, JSON (module doc)")
    ap.add_argument("--chunk", type=int, default=10, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds (best one counts)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--json", help="write {kind: ms per step} here")
    args = ap.parse_args(argv)
    spec = json.loads(args.spec)
    kinds = list(spec["kinds"])
    unknown = [k for k in kinds if spec["kinds"][k][0] not in METHODS]
    if unknown:
        ap.error(f"--spec: kind(s) {', '.join(unknown)} name no method of {', '.join(METHODS)}")
    torch.set_num_threads(args.threads)
    runs = {k: make_step(spec, k, args.batch, args.chunk) for k in kinds}
    for run, _ in runs.values():  # warm-up (allocator, kernels)
        run()
    best = {k: float("inf") for k in kinds}
    for _ in range(args.rounds):
        for k in kinds:
            t0 = time.perf_counter()
            runs[k][0]()
            best[k] = min(best[k], (time.perf_counter() - t0) / args.chunk)
    result = {
        "torch": torch.__version__,
        "threads": args.threads,
        "ms_per_step": {k: best[k] * 1e3 for k in kinds},
        "n_trainable": {k: runs[k][1] for k in kinds},
    }
    for k in kinds:
        print(f"{k}: {best[k] * 1e3:.1f} ms/step ({runs[k][1]} trainable)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
