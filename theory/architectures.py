"""The built-in core architectures (sizes kept small: these are for checking theorems).

Register more with :func:`theory.architecture.register_architecture` (see docs/extending.md).
"""

from theory import attention, blocks, positional  # noqa: F401  (the kinds named below)
from theory.architecture import Architecture, register_architecture

PAPER = register_architecture(
    Architecture(
        name="paper",
        n_layers=1,
        n_heads=2,
        d_model=16,
        d_head=8,
        d_mlp=32,
        d_vocab=11,
        n_ctx=32,
        positional="learned",
        norm="none",
        causal=True,
        final_norm=False,
        description="the paper's analysis model: one attention layer, no LayerNorm, causal",
    )
)

GPT = register_architecture(
    Architecture(
        name="gpt",
        n_layers=2,
        n_heads=4,
        d_model=32,
        d_head=8,
        d_mlp=64,
        d_vocab=13,
        n_ctx=32,
        positional="learned",
        norm="pre",
        causal=True,
        mlp_act="gelu_tanh",
        description="GPT-2 style decoder: pre-LN, learned absolute positions, causal",
    )
)

BERT = register_architecture(
    Architecture(
        name="bert",
        n_layers=2,
        n_heads=4,
        d_model=32,
        d_head=8,
        d_mlp=64,
        d_vocab=13,
        n_ctx=32,
        positional="learned",
        norm="post",
        causal=False,
        embed_norm=True,
        n_token_types=2,
        final_norm=False,
        norm_eps=1e-12,
        description="BERT style encoder: post-LN, embedding LayerNorm, token types, bidirectional",
    )
)

BROKEN = register_architecture(
    Architecture(
        name="broken-denominator",
        n_layers=1,
        n_heads=2,
        d_model=16,
        d_head=8,
        d_mlp=32,
        d_vocab=11,
        n_ctx=32,
        positional="learned",
        norm="none",
        causal=True,
        final_norm=False,
        attention="broken_prefix_denominator",
        negative_control=True,
        expectations=(
            ("relative_attention", "fails", "prefix left out of the softmax denominator"),
            ("convex_output", "fails", "prefix left out of the softmax denominator"),
            ("single_prefix", "fails", "prefix left out of the softmax denominator"),
            (
                "bias_span",
                "fails",
                "prefix left out of the softmax denominator: t^pt - (1 - m) t is no bias",
            ),
            ("pre_ln", "fails", "prefix left out of the softmax denominator"),
            (
                "finetune_contrast",
                "fails",
                "prefix left out of the softmax denominator: the prefix half fails",
            ),
        ),
        description=(
            "NEGATIVE CONTROL: the paper model with a wrong "
            "attention (prefix outside the denominator)"
        ),
    )
)
