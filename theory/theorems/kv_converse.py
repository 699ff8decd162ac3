"""KV-prefix: the same algebra with free keys and values, and when a KV-prefix is a prefix
(docs/theory.md §3.6).

A hidden-state prefix ``s`` is the KV-prefix ``(W_K h + b_K, W_V h + b_V)`` with ``h`` the attention
input made from ``s`` (``h = LN_1(s)`` pre-LN; checked by ``pre_ln`` and ``hierarchy``).  Conversely
a KV-prefix ``(k, v)`` of one layer is produced by some attention input ``h`` iff the stacked system

    h [W_K^1 .. W_K^G  W_V^1 .. W_V^G] = [R_p^{-1} k - b_K ,  v - b_V]      (G key/value heads)

is solvable; it is solvable for EVERY ``(k, v)`` exactly when ``M = [W_K; W_V]`` (``2 G d_head``
rows in the paper's layout) has full row rank, which needs ``2 G d_head <= d_model``.  Otherwise the
KV-prefix is strictly larger: a generic ``(k, v)`` is not the image of any state (the witness).

"""

import jax.numpy as jnp
import sympy as sp

from theory.context import Prefix, n_virtual
from theory.positional import rotate
from theory.symbolic import Derivation, Step
from theory.theorem import Control, CoqProof, Theorem
from theory.theorems.common import logits_of, max_abs

# a 2 x 2 instance of M = [W_K; W_V] (one key row, one value row over d = 2 coordinates)
# and its inverse
w11, w12, w21, w22 = sp.symbols("w_11 w_12 w_21 w_22")
k0, v0 = sp.symbols("k v")
D = sp.Symbol("D")
h1, h2 = sp.Symbol("h_1"), sp.Symbol("h_2")
detM = sp.Symbol("det_M")
c, x1, x2 = sp.symbols("c x_1 x_2")


def derivation() -> Derivation:
    return Derivation(
        title="KV-prefix: a free (k, v) is a hidden-state prefix iff [W_K; W_V] has full row rank",
        definitions=(
            (
                detM,
                w11 * w22 - w12 * w21,
                "determinant of M = [[w_11, w_12], [w_21, w_22]] (rows: W_K, W_V)",
            ),
            (h1, (w22 * k0 - w12 * v0) / detM, "solution h = M^{-1} (k, v), first coordinate"),
            (h2, (w11 * v0 - w21 * k0) / detM, "second coordinate"),
        ),
        steps=(
            Step(
                w11 * h1 + w12 * h2,
                k0,
                "full row rank (det_M != 0): the state reproduces the free key",
            ),
            Step(
                w21 * h1 + w22 * h2,
                v0,
                "... and the free value, so (k, v) is a hidden-state prefix",
            ),
            Step(
                (c * w11) * x1 + (c * w12) * x2,
                c * (w11 * x1 + w12 * x2),
                "rank-deficient M (value row = c * key row): for EVERY state x the value "
                "is c times the key, so a free (k, v) with v != c k is no state's image",
            ),
        ),
        notes=(
            "The 2 x 2 case shows the mechanism: reachable (k, v) = the column space of M. In "
            "general M has 2 G d_head rows (keys and values of all G key/value heads share one "
            "state) and d_model columns; its column space is all of R^{2 G d_head} exactly "
            "when it has full row rank, which requires 2 G d_head <= d_model (random weights: "
            "generically sufficient). With RoPE the key is rotated by the virtual position "
            "(R_p orthogonal, undone first). With pre-LN the statement is about the attention "
            "input h = LN_1(s); which h are LayerNorm outputs is a further restriction not "
            "claimed here. The decomposition of §3 holds for any (k, v): relative_attention, "
            "convex_output and single_prefix run with the kv_prefix method.",
        ),
    )


def full_row_rank(arch) -> bool:
    """Whether random weights give [W_K; W_V] full row rank (generically: 2 G d_head <= d_model)."""
    return 2 * arch.kv_heads * arch.d_head <= arch.d_model


def qk_norm_key_targets(arch, attn, keys):
    """With QK-norm a key is ``k = w * y / sqrt(mean(y^2) + eps)`` with ``y = W_K h + b_K``.

    Returns ``(y, residual)``: the pre-norm key ``y`` that gives ``k`` when one exists, and how far
    ``k`` is from every normalised key: ``u = k / w`` must have ``rho = mean(u^2) < 1`` (it equals
    ``m / (m + eps)`` with ``m = mean(y^2)``), and then ``y = u sqrt(eps / (1 - rho))``."""
    u = keys / attn["k_norm"]["w"]  # [n_p, G, d_head]
    rho = jnp.mean(u * u, axis=-1, keepdims=True)
    reachable = rho < 1.0
    scale = jnp.sqrt(arch.norm_eps / jnp.where(reachable, 1.0 - rho, 1.0))
    return u * scale, jnp.max(jnp.maximum(rho - 1.0, 0.0))


def residuals(arch, trial):
    """[n_layers, 2]: relative residual of the realising
    system, and (no pre-attention norm) logit gap."""
    n_p = n_virtual(trial.context)
    states, out = [], []
    for l, bp in enumerate(trial.params["blocks"]):
        attn = bp["attn"]
        keys = jnp.swapaxes(trial.context.keys[l], 0, 1)  # [n_p, G, d_head]
        values = jnp.swapaxes(trial.context.values[l], 0, 1)
        keys = rotate(arch, keys, -jnp.arange(n_p))  # undo the rotation R_p
        unreachable = jnp.zeros((), keys.dtype)
        if arch.qk_norm:  # undo the norm too: keys of RMS >= 1 are no normalised key
            keys, unreachable = qk_norm_key_targets(arch, attn, keys)
        target = jnp.concatenate(
            [(keys - attn["b_K"]).reshape(n_p, -1), (values - attn["b_V"]).reshape(n_p, -1)], axis=1
        )  # [n_p, 2 G k]
        M = jnp.concatenate(
            [
                attn["W_K"].transpose(1, 0, 2).reshape(arch.d_model, -1),
                attn["W_V"].transpose(1, 0, 2).reshape(arch.d_model, -1),
            ],
            axis=1,
        )  # [d, 2 G k]
        h = jnp.linalg.lstsq(M.T, target.T)[0].T  # [n_p, d_model]
        out.append(jnp.maximum(max_abs(h @ M - target) / max_abs(target), unreachable))
        states.append(h)
    res = jnp.stack(out)
    if arch.norm != "pre" and not arch.qk_norm:
        gap = max_abs(
            logits_of(trial.params, arch, trial, Prefix(jnp.stack(states)))
            - logits_of(trial.params, arch, trial, trial.context)
        )
        return jnp.stack([res, jnp.broadcast_to(gap, res.shape)], axis=1)
    return jnp.stack([res, jnp.zeros_like(res)], axis=1)


def check(arch, trial):
    return residuals(arch, trial).max()


def expect(arch, method):
    dims = f"2 G d_head = {2 * arch.kv_heads * arch.d_head}"
    if arch.qk_norm:
        return "fails", (
            "witness: qk-norm keys are normalised (RMS of k / w below 1), so a free key of larger "
            "RMS is no state's image"
        )
    if full_row_rank(arch):
        return "holds", f"{dims} <= d_model = {arch.d_model}: full row rank"
    return "fails", (
        f"witness: {dims} > d_model = {arch.d_model}: "
        "a random KV-prefix is no hidden state's image (KV-prefix strictly wider)"
    )


def tie_values_to_keys(arch, trial):
    """W_V = W_K in every layer, so [W_K; W_V] loses rank (a control)."""
    blocks = [dict(b, attn=dict(b["attn"], W_V=b["attn"]["W_K"])) for b in trial.params["blocks"]]
    return trial._replace(params=dict(trial.params, blocks=blocks))


MEASURES = """\
kv_prefix method, every layer: the relative least-squares residual of the system h [W_K  W_V] =
[R_p^{-1} k - b_K, v - b_V] for the trial's random KV-prefix (G key/value heads stacked), and,
where the architecture has no pre-attention norm, the logit gap between the solved hidden-state
prefix and the KV-prefix run."""

THEOREM = Theorem(
    id="kv_converse",
    statement="A KV-prefix (k, v) is a hidden-state prefix iff [W_K; W_V] has full row rank "
    "(else KV-prefix is strictly wider: witness).",
    section="§3.6",
    assumptions=(
        "keys and values of all key/value heads of a layer come from one state",
        "pre-LN: about the attention input LN_1(s), not which inputs LayerNorm can output",
        "random weights: full row rank iff 2 G d_head <= d_model (generic)",
        "qk-norm: a key is reachable only if RMS(k / w) < 1 (the norm's image); the check "
        "measures that and solves the system for the pre-norm key",
    ),
    derivation=derivation,
    check=check,
    measures=MEASURES,
    methods=("kv_prefix",),
    expect=expect,
    controls=(
        Control(
            "values tied to keys",
            "W_V = W_K: [W_K; W_V] loses rank, so a random KV-prefix is no state's image",
            "paper",
            "kv_prefix",
            changes=(("d_head", 4),),
            transform=tie_values_to_keys,
        ),
    ),
    requires=("attention", "projections"),
    coq=CoqProof(
        names=(
            "KVConverse.kv_converse",
            "KVConverse.kv_converse_witness",
            "KVConverse.kv_strictly_wider_when_wide",
            "KVConverse.kv_converse_rotated",
            "Linear.independent_iff_onto",
        ),
        general_in=(
            "every d_model, number of key/value heads G and d_head (W_K and W_V stack G d_head "
            "rows each), with biases b_K, b_V, and with an orthogonal positional rotation of the "
            "key (RoPE)"
        ),
        gap=(
            "The statement is about the attention input h; which h a pre-LN LayerNorm can output "
            "is not claimed (as in the numeric check)."
        ),
    ),
)
