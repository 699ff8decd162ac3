"""Positions: does relative attention survive the prefix SHIFTING the content?
(docs/theory.md §1.7)

The §3 statements compare runs with the content at the same positions.  If instead the no-prefix run
has its content at positions ``0..n-1`` (the prefix shifted it by ``n_p``), a relative scheme (RoPE,
ALiBi, none) gives the same content-to-content logits, so layer 0's relative attention is still
unchanged; an absolute scheme (learned, sinusoidal) adds different position codes to the content,
and it is not.  Each positional scheme declares ``relative`` in :mod:`theory.positional`; the
expectation is read from that registry data, so "fails, as expected" on absolute schemes is a pass
(a witness).

"""

import jax.numpy as jnp
import sympy as sp

from theory.context import n_virtual
from theory.hooks import act_name
from theory.model import forward
from theory.registry import POSITIONAL_SCHEMES
from theory.symbolic import Derivation, Step
from theory.theorem import Control, CoqProof, Theorem

i, j, n_p = sp.symbols("i j n_p", integer=True)
theta, m_h, T = sp.symbols("theta m_h T", real=True)
qx, qy, kx, ky = sp.symbols("q_x q_y k_x k_y", real=True)
rope, alibi = sp.symbols("l^RoPE l^ALiBi")


def _rot(angle, x, y):
    return sp.Matrix([[sp.cos(angle), -sp.sin(angle)], [sp.sin(angle), sp.cos(angle)]]) * sp.Matrix(
        [x, y]
    )


def _rope_logit(pi, pj):
    return T * (_rot(pi * theta, qx, qy).T * _rot(pj * theta, kx, ky))[0, 0]


def derivation() -> Derivation:
    return Derivation(
        title=(
            "Relative schemes: shifting every content position "
            "by n_p leaves content-to-content logits unchanged"
        ),
        definitions=(
            (rope, _rope_logit(i, j), "RoPE logit of one frequency pair: (R_i q) . (R_j k)"),
            (
                alibi,
                T * qx * kx - m_h * sp.Abs(i - j),
                "ALiBi logit: content term minus m_h |i - j|",
            ),
        ),
        steps=(
            Step(
                _rope_logit(i + n_p, j + n_p),
                rope,
                "RoPE: R_{i+n_p}^T R_{j+n_p} = R_{j-i}, the shift cancels",
            ),
            Step(
                T * qx * kx - m_h * sp.Abs((i + n_p) - (j + n_p)),
                alibi,
                "ALiBi: |(i+n_p) - (j+n_p)| = |i - j|",
            ),
        ),
        notes=(
            "With learned or sinusoidal absolute codes the content embedding is E[tok] "
            "+ p_{i+n_p} instead of E[tok] + p_i: the layer-0 inputs differ, so in "
            "general the content logits differ too (the numeric witness). Relative "
            "attention is then unchanged after the shift only for relative schemes; "
            "the paper's statements assume equal positions (docs/theory.md §1.7).",
        ),
    )


def residual(arch, trial):
    n_p = n_virtual(trial.context)
    _, cache = forward(
        trial.adapted,
        arch,
        trial.tokens,
        trial.context,
        attention_mask=trial.key_mask,
        validate=False,
    )
    _, shifted = forward(
        trial.params,
        arch,
        trial.tokens,
        None,
        position_offset=0,
        attention_mask=trial.key_mask[n_p:],
        validate=False,
    )
    pattern = cache[act_name("pattern", 0)][:, n_p:, :]
    mass = pattern[:, :, :n_p].sum(-1)
    return jnp.max(
        jnp.abs(pattern[:, :, n_p:] - (1 - mass)[..., None] * shifted[act_name("pattern", 0)])
    )


def check(arch, trial):
    return residual(arch, trial)


def expect(arch, method):
    scheme = POSITIONAL_SCHEMES[arch.positional]
    if scheme.relative:
        return (
            "holds",
            f"positional scheme {scheme.name!r} is relative (declared in theory.positional)",
        )
    return (
        "fails",
        f"witness: positional scheme {scheme.name!r} is absolute, the shift changes the content "
        "inputs",
    )


MEASURES = """\
Layer 0: max |A^pt_ij - (1 - m_i) A^shift_ij| with A^shift from the unadapted model without any
prefix and the content at positions 0..n-1 (shifted back by n_p), A^pt from the prefixed run."""

THEOREM = Theorem(
    id="position_shift",
    statement="With a relative positional scheme relative attention also survives the prefix "
    "shifting the content by n_p; with absolute positions it does not (witness).",
    section="§1.7",
    assumptions=(
        "layer 0 (deeper layers are covered given their inputs by relative_attention)",
        "the scheme's 'relative' flag in theory.positional decides the expectation",
        "softmax attention",
    ),
    derivation=derivation,
    check=check,
    measures=MEASURES,
    methods=("prefix",),
    expect=expect,
    controls=(
        Control(
            "absolute positions",
            "learned absolute positions: shifting the content changes its layer-0 inputs",
            "gpt",
            "prefix",
        ),
        Control(
            "rotary positions",
            "RoPE is relative: the witness of the absolute case disappears",
            "gpt",
            "prefix",
            outcome="holds",
            changes=(("positional", "rope"),),
        ),
    ),
    coq=CoqProof(
        names=(
            "PositionShift.position_shift_relative",
            "PositionShift.rope_relative",
            "PositionShift.rope_scheme_relative",
            "PositionShift.alibi_scheme_relative",
            "PositionShift.position_shift_absolute_witness",
        ),
        general_in=(
            "any relative scheme (RoPE with any number of frequency pairs and frequencies, ALiBi "
            "with any slope), every n >= 1, n_p, shift; absolute positions: a witness for every "
            "shift n_p >= 1 and every context"
        ),
    ),
)
