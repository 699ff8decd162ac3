"""The models of docs/theory.md §4 and their per-mode sizes and training budgets.

Three modes:

  quick    tiny models, a few hundred steps: exercises every code path in about a
           minute per experiment (tests, notebooks).  The claims are reported but are
           not expected to hold at this size.
  default  sized for a 2-core CPU (the whole ``experiment all`` within 30 minutes):
           the paper's 1-layer models, the 4-layer models at d_model 64 (combine) and
           128 (the LoRA row) instead of 256, Adam with larger learning rates and far
           fewer iterations than the paper.
  full     the paper's sizes (d_model 96 / 256 / 256) and iteration counts (for a GPU).

Every model is a decoder built from :class:`theory.architecture.Architecture` (learned
positions, causal, GELU MLP of width 4 d_model) and run by :func:`theory.model.forward`.
``n_ctx = 32`` everywhere, so a prefix may have at most 13 positions (19 content positions).
"""

from __future__ import annotations

from dataclasses import dataclass

from experiments.tasks import D_VOCAB
from theory.architecture import Architecture, validate_architecture
from theory.errors import unknown_name

MODES = ("quick", "default", "full")
N_CTX = 32


def make_arch(
    name: str, n_layers: int, n_heads: int, d_model: int, ln_before_attention: bool = True
):
    """A minGPT-like decoder for the digit tasks.

    ``ln_before_attention=False`` (the elicitation model, "no LN before attention"):
    our ``Architecture`` places norms globally, so this model has no LayerNorm at all.
    """
    return validate_architecture(
        Architecture(
            name=name,
            n_layers=n_layers,
            n_heads=n_heads,
            d_model=d_model,
            d_head=d_model // n_heads,
            d_mlp=4 * d_model,
            d_vocab=D_VOCAB,
            n_ctx=N_CTX,
            positional="learned",
            norm="pre" if ln_before_attention else "none",
            causal=True,
            mlp_act="gelu_tanh",
            description=(
                f"digit-task decoder: {n_layers} layer(s), {n_heads} head(s), d_model {d_model}"
            ),
        )
    )


@dataclass(frozen=True)
class Budget:
    steps: int
    lr: float
    schedule: str = "cosine"  # see experiments.train.TrainConfig
    b2: float = 0.999  # Adam's second-moment decay (TrainConfig.b2)
    batch: int = 64  # sequences per step (TrainConfig.batch)


@dataclass(frozen=True)
class ModeConfig:
    """Model sizes, step counts and learning rates of one mode."""

    d_attn: int  # new-attention model (paper 96)
    d_elicit: int  # elicitation model (paper 256)
    d_combine: int  # combine / LoRA model (paper 256)
    layers_combine: int  # (paper 4)
    pre_attn: Budget  # pretrain ascending (paper 20k)
    ft_attn: Budget  # full fine-tune descending (paper 10k)
    prefix_attn: Budget  # prefix on descending (paper 40k)
    pre_elicit: Budget  # pretrain random (paper 20k)
    prefix_elicit: Budget  # per-task prefixes (paper 30k, lr 5e-5)
    pre_combine: Budget  # pretrain random (paper 40k)
    prefix_combine: Budget  # per-task prefixes
    prefix_new: Budget  # ascending_add1 / double_hist prefixes (paper 500k / 100k)
    d_lora: int  # LoRA-row model (paper 256): its own base, pretrained with n_p=12 slots
    pre_lora: Budget  # pretrain random for the LoRA row (paper 40k)
    prefix_lora: Budget  # prefix n_p=12 on double_hist (paper 100k, lr 5e-5)
    lora: Budget  # rank-1 LoRA on W_in, W_out, W_O (paper 10k, lr 5e-3, constant, beta2 0.95)
    ft_lora: Budget  # full fine-tune of the LoRA row's model on double_hist (a reference)
    # LoRA's A (B = 0) has columns of norm lora_init_scale, random (entries of std
    # lora_init_scale / sqrt(d_in); 1 in the companion code) or along the top singular
    # vectors of the task's full weight gradient (lora_init "gradient"). Default mode: 4 and
    # "gradient": with random A, whether rank-1 LoRA leaves its loss plateau within the budget
    # depended on the base model's float32 rounding (experiments/README.md, "The LoRA row:
    # what it takes", has every attempt)
    lora_init_scale: float
    lora_init: str
    n_eval: int  # test inputs per accuracy


MODE_CONFIGS = {
    "quick": ModeConfig(
        d_attn=32,
        d_elicit=32,
        d_combine=32,
        layers_combine=2,
        pre_attn=Budget(300, 3e-3),
        ft_attn=Budget(200, 3e-3),
        prefix_attn=Budget(200, 1e-2),
        pre_elicit=Budget(300, 3e-3),
        prefix_elicit=Budget(100, 1e-2),
        pre_combine=Budget(300, 3e-3),
        prefix_combine=Budget(100, 1e-2),
        prefix_new=Budget(100, 1e-2),
        d_lora=32,
        pre_lora=Budget(300, 3e-3),
        prefix_lora=Budget(100, 1e-2),
        lora=Budget(100, 1e-2, "constant", 0.95),
        ft_lora=Budget(100, 3e-3),
        lora_init_scale=1.0,
        lora_init="gradient",
        n_eval=256,
    ),
    "default": ModeConfig(
        d_attn=96,
        d_elicit=128,
        d_combine=64,
        layers_combine=4,
        pre_attn=Budget(2000, 2e-3),
        ft_attn=Budget(1000, 2e-3),
        prefix_attn=Budget(1000, 1e-2),
        pre_elicit=Budget(3000, 2e-3),
        prefix_elicit=Budget(1500, 2e-2),
        pre_combine=Budget(2000, 2e-3),
        prefix_combine=Budget(600, 1e-2),
        prefix_new=Budget(5000, 1e-1),
        d_lora=128,
        pre_lora=Budget(2000, 2e-3),
        prefix_lora=Budget(2000, 3e-2),
        lora=Budget(20000, 1e-2, "wsd", 0.95, batch=32),
        ft_lora=Budget(1000, 3e-3),
        lora_init_scale=4.0,
        lora_init="gradient",
        n_eval=2048,
    ),
    "full": ModeConfig(
        d_attn=96,
        d_elicit=256,
        d_combine=256,
        layers_combine=4,
        pre_attn=Budget(20000, 1e-3),
        ft_attn=Budget(10000, 1e-3),
        prefix_attn=Budget(40000, 1e-2),
        pre_elicit=Budget(20000, 1e-3),
        prefix_elicit=Budget(30000, 1e-2),
        pre_combine=Budget(40000, 1e-3),
        prefix_combine=Budget(30000, 1e-2),
        prefix_new=Budget(500000, 1e-2),
        d_lora=256,
        pre_lora=Budget(40000, 1e-3),
        prefix_lora=Budget(100000, 1e-2),
        lora=Budget(10000, 5e-3, "constant", 0.95),
        ft_lora=Budget(10000, 1e-3),
        lora_init_scale=1.0,
        lora_init="random",
        n_eval=8192,
    ),
}


def mode_config(mode: str) -> ModeConfig:
    if mode not in MODE_CONFIGS:
        raise unknown_name("mode", mode, MODES)
    return MODE_CONFIGS[mode]
