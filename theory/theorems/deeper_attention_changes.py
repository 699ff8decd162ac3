"""Deeper layers, the limit of the claim: unconditional attention DOES change
(docs/theory.md §3.8).

The invariance of relative attention holds for layer ``l`` given its inputs.  Compared with the
unadapted model run WITHOUT any prefix (content at the same positions), a deeper layer's relative
attention changes, because the earlier layers' biases moved its inputs (``deeper_first_order``).
This witness keeps the catalogue from claiming more than the paper: residual =
``max_{l >= 1} |A^pt_ij - (1 - m_i) A^base_ij|`` (refuted claim: "unchanged in every layer"),
expected "fails" in every model with more than one layer, "holds" (nothing to compare) with one
layer.
"""

import jax.numpy as jnp
import sympy as sp

from theory.context import n_virtual
from theory.hooks import act_name
from theory.model import forward
from theory.symbolic import Derivation, Step
from theory.theorem import Control, CoqProof, Theorem
from theory.theorems.common import base_run, core_architecture

T, q, k1, k2, dq = sp.symbols("T q k_1 k_2 delta_q", real=True)
ratio, ratio_pt = sp.symbols("rho rho^{pt}")


def derivation() -> Derivation:
    return Derivation(
        title="A deeper layer's relative attention changes when its inputs change (1-d instance)",
        definitions=(
            (
                ratio,
                sp.exp(T * q * k1) / sp.exp(T * q * k2),
                "A_i1 / A_i2 without prefix (relative attention)",
            ),
            (
                ratio_pt,
                sp.exp(T * (q + dq) * k1) / sp.exp(T * (q + dq) * k2),
                "the same ratio after earlier biases moved the query by delta_q",
            ),
        ),
        steps=(
            Step(
                sp.log(ratio_pt) - sp.log(ratio),
                T * dq * (k1 - k2),
                "log-ratio change = T delta_q (k_1 - k_2)",
            ),
            Step(
                ratio_pt,
                ratio * sp.exp(T * dq * (k1 - k2)),
                "the ratio is multiplied by exp(T delta_q (k_1 - k_2)), which is != 1 whenever "
                "T delta_q (k_1 - k_2) != 0: relative attention changes",
            ),
        ),
        notes=(
            "A one-dimensional instance suffices for an existence statement; the numeric check "
            "exhibits the change in random multi-layer models (with a prefix in every layer).",
        ),
    )


def residual(arch, trial):
    n_p = n_virtual(trial.context)
    if arch.n_layers == 1:
        return jnp.zeros((), trial.params["embed"]["W_E"].dtype)
    _, cache = forward(
        trial.adapted,
        arch,
        trial.tokens,
        trial.context,
        attention_mask=trial.key_mask,
        validate=False,
    )
    _, base = base_run(arch, trial)
    gaps = []
    for l in range(1, arch.n_layers):
        pattern = cache[act_name("pattern", l)][:, n_p:, :]
        mass = pattern[:, :, :n_p].sum(-1)
        gaps.append(
            jnp.max(
                jnp.abs(pattern[:, :, n_p:] - (1 - mass)[..., None] * base[act_name("pattern", l)])
            )
        )
    return jnp.max(jnp.stack(gaps))


def check(arch, trial):
    return residual(arch, trial)


def expect(arch, method):
    if arch.n_layers == 1:
        return "holds", "one layer: no deeper layer whose inputs the prefix could move"
    return "fails", "witness: earlier-layer biases change a deeper layer's relative attention"


def silence_layer_0(arch, trial):
    """W_O = 0 in layer 0: the prefix cannot move later layers' inputs (a control)."""

    def zero(params):
        blocks = list(params["blocks"])
        attn = dict(blocks[0]["attn"], W_O=jnp.zeros_like(blocks[0]["attn"]["W_O"]))
        blocks[0] = dict(blocks[0], attn=attn)
        return dict(params, blocks=blocks)

    return trial._replace(params=zero(trial.params), adapted=zero(trial.adapted))


MEASURES = """\
How far the REFUTED claim "relative attention is unchanged in every layer, unconditionally"
misses: max over layers l >= 1 of |A^pt_ij - (1 - m_i) A^base_ij| with A^base from the unadapted
model run without any prefix (content at the same positions); 0 with one layer."""

THEOREM = Theorem(
    id="deeper_attention_changes",
    statement="Witness (refuted claim: 'relative attention is unchanged in every layer, "
    "unconditionally'): a deeper layer's attention changes through earlier biases.",
    section="§3.8",
    assumptions=(
        "compared with the unadapted model without prefix, content at the same positions",
        "layers >= 1 only (layer 0 is covered by relative_attention)",
    ),
    derivation=derivation,
    check=check,
    measures=MEASURES,
    default_run=core_architecture,
    methods=("prefix",),
    expect=expect,
    controls=(
        Control(
            "layer 0 writes nothing",
            "with W_O = 0 in layer 0 the prefix cannot move the deeper inputs: no witness",
            "gpt",
            "prefix",
            outcome="holds",
            transform=silence_layer_0,
        ),
    ),
    coq=CoqProof(
        names=("DeeperAttention.deeper_attention_changes",),
        general_in=("one two-layer model, for every context of its second layer"),
    ),
)
