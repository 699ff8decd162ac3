"""Pre-LN: every §3 statement holds with ``s``
replaced by the normalised ``s`` (docs/theory.md §3.5).

A prefix state ``s`` set at a block's input (the ``resid_pre`` activation) reaches attention as
``h = LN_1(s)`` in a pre-LN block (``h = s`` otherwise), so its key and value are
``k = W_K LN_1(s) + b_K`` (rotated by its position with RoPE) and ``u = W_V LN_1(s) + b_V``,
and the output decomposition reads ``t^pt_i = sum_p A^pt_ip u_p + (1 - m_i) t_i`` with these ``u_p``
(the paper's LLaMA measurement passes ``s`` through the attention norm for the same reason).

"""

import jax.numpy as jnp
import sympy as sp

from theory.compare import layer_pairs
from theory.context import n_virtual
from theory.hooks import act_name
from theory.layers import apply_norm
from theory.positional import rotate
from theory.symbolic import Derivation, Step
from theory.theorem import Control, CoqProof, Theorem
from theory.theorems.common import core_architecture, max_abs

PATTERN, K, V, Z_HOOK = act_name("pattern"), act_name("k"), act_name("v"), act_name("z")

s, mu, gamma, beta = sp.symbols("s mu gamma beta")
sigma2 = sp.Symbol("sigma^2", nonnegative=True)
eps = sp.Symbol("epsilon", positive=True)
h = sp.Symbol("h")  # one coordinate of the normalised state LN(s)
W, b = sp.symbols("W_V b_V")  # one row of W_V, one coordinate of b_V (scalar stand-ins)
u = sp.Symbol("u")
A, m, t = sp.symbols("A^{pt}_{i0} m_i t_i")
tpt = sp.Symbol("t^{pt}_i")
e0, Z = sp.symbols("e_{i0} Z_i", positive=True)


def derivation() -> Derivation:
    return Derivation(
        title=(
            "Pre-LN: the prefix enters attention as LN(s), "
            "so the value (bias direction) is W_V LN(s) + b_V"
        ),
        definitions=(
            (
                h,
                (s - mu) / sp.sqrt(sigma2 + eps) * gamma + beta,
                "LayerNorm of the state (one coordinate)",
            ),
            (u, W * h + b, "value of the prefix position, computed from the normalised state"),
            (A, e0 / (e0 + Z), "prefix weight; e_i0 = exp(T q_i . k_0), k_0 from LN(s)"),
            (tpt, A * u + (1 - A) * t, "the §3 decomposition applied to the attention input h"),
        ),
        steps=(
            Step(
                u,
                W * ((s - mu) / sp.sqrt(sigma2 + eps) * gamma + beta) + b,
                "the value seen by attention is W_V LN(s) + b_V, not W_V s + b_V",
            ),
            Step(
                tpt - t,
                A * (u - t),
                "displacement towards W_V LN(s) + b_V (the §3 algebra, unchanged)",
            ),
            Step(1 - A, Z / (e0 + Z), "content share; relative attention unchanged as before"),
        ),
        notes=(
            "The §3 derivations never use what the key and value are made from, only "
            "that they are the same for every query; replacing s by h = LN_1(s) changes "
            "nothing in them. The scalars W_V, b_V stand for one row of the value map. "
            "Post-LN blocks read the block input directly (h = s); with RoPE the key is "
            "additionally rotated by the virtual position, which the logit absorbs.",
        ),
    )


def residuals(arch, trial, normalise: bool = True):
    """[n_layers, 3]: value residual, key residual, output residual with explicitly computed values.

    ``normalise=False`` uses the raw state (the negative
    control: wrong on a pre-LN architecture)."""
    n_p = n_virtual(trial.context)
    group = arch.n_heads // arch.kv_heads
    out = []
    for l, layer in enumerate(layer_pairs(arch, trial)[0]):
        bp = trial.params["blocks"][l]
        states = trial.context.states[l]  # [n_p, d_model]
        h = apply_norm(bp["ln1"], states, arch) if (arch.norm == "pre" and normalise) else states
        attn = bp["attn"]
        value = jnp.einsum("pd,gdk->pgk", h, attn["W_V"]) + attn["b_V"]
        key = jnp.einsum("pd,gdk->pgk", h, attn["W_K"]) + attn["b_K"]
        key = rotate(arch, key, jnp.arange(n_p))
        adapted, base = layer.adapted, layer.base
        key_res = 0.0 if arch.qk_norm else max_abs(adapted[K][:n_p] - key)
        pattern = adapted[PATTERN][:, n_p:, :]
        to_prefix = pattern[:, :, :n_p]
        mass = to_prefix.sum(-1)
        bias = jnp.einsum("hqp,phd->qhd", to_prefix, jnp.repeat(value, group, axis=1))
        predicted = bias + (1 - mass).T[..., None] * base[Z_HOOK]
        out.append(
            jnp.stack(
                [
                    max_abs(adapted[V][:n_p] - value),
                    jnp.asarray(key_res, value.dtype),
                    max_abs(adapted[Z_HOOK][n_p:] - predicted),
                ]
            )
        )
    return jnp.stack(out)


def check(arch, trial):
    return residuals(arch, trial).max()


ROTARY_REPRESENTATIVE = "llama"  # RoPE, RMSNorm pre-norm, grouped-query attention


def in_default_run(arch) -> bool:
    """The core architectures and one rotary one: the key check rotates the prefix's key by its
    own position, so a plain ``verify`` sees a model that rotates virtual keys wrongly."""
    return core_architecture(arch) or arch.name == ROTARY_REPRESENTATIVE


def raw_state_check(arch, trial):
    """A deliberately wrong check: keys and values from the raw state ``s`` instead of LN(s)."""
    return residuals(arch, trial, normalise=False).max()


MEASURES = """\
Prefix method, every layer: the keys and values of the virtual positions computed from the
parameters and LN_1(s) (pre-LN; s itself otherwise), against the keys and values the model used,
and the output decomposition t^pt_i = sum_p A^pt_ip u_p + (1 - m_i) t_i with these u_p. With
qk-norm the key part is skipped (keys are normalised per head)."""

THEOREM = Theorem(
    id="pre_ln",
    statement="Pre-LN: the prefix's key/value are W_K LN(s)+b_K, W_V LN(s)+b_V and the §3 "
    "decomposition holds with s replaced by LN(s).",
    section="§3.5",
    assumptions=(
        "prefix = hidden state at the block input (the resid_pre activation), as in the paper",
        "pre-LN blocks normalise it before attention; post-LN and no-norm blocks use it as is",
        "softmax attention; content at the same positions; deeper layers given their inputs",
        "qk-norm architectures: the key part is not checked (keys are normalised per head)",
    ),
    derivation=derivation,
    check=check,
    measures=MEASURES,
    default_run=in_default_run,
    methods=("prefix",),
    controls=(
        Control(
            "raw state",
            "values and keys computed from s instead of LN_1(s): wrong on a pre-LN model",
            "gpt",
            "prefix",
            check=raw_state_check,
        ),
    ),
    requires=("attention", "projections"),
    coq=CoqProof(
        names=("Layer.pre_ln",),
        general_in=(
            "any pre-attention norm (LayerNorm, RMSNorm, or the identity for post-LN and no-norm "
            "blocks), any key/value maps (with biases), every head, n >= 1, n_p"
        ),
    ),
)
