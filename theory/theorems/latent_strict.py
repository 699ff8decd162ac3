"""Where the latent prefix sits: equal to the hidden-state prefix when [W_DKV  W_KR] has full
column rank, strictly narrower than the per-head KV-prefix (docs/theory.md §5.3.2).

* KV-prefix ⊄ latent prefix (witness): a per-head KV-prefix gives every head its own key and
  value, ``2 n_heads d_head`` numbers per position; a latent prefix ``(c_p, k^R_p)`` has
  ``d_latent + d_rope``, and its heads' keys share one RoPE part. A KV-prefix is a latent's image
  only if its content keys and values solve ``[k^C_h, v_h]_h = c [W_UK^h, W_UV^h]_h`` and its
  heads' RoPE parts agree; a random one does not when ``n_heads (d_nope + d_head) > d_latent``
  or ``n_heads > 1``.
* Latent prefix = hidden-state prefix iff ``[W_DKV  W_KR]`` (``d_model x (d_latent + d_rope)``)
  has full column rank, which needs ``d_latent + d_rope <= d_model`` (DeepSeek-V2: 512 + 64 <=
  5120): every ``(c, k^R)`` is then the image ``(h W_DKV, R_p h W_KR)`` of some attention input
  ``h``; otherwise a generic latent is no state's image (witness).

So, in DeepSeek's sizes: prefix-tuning = latent prefix ⊊ PEFT-style per-head KV-prefix.
"""

import jax
import jax.numpy as jnp
import sympy as sp

from theory.context import KVPrefix
from theory.positional import rotate
from theory.symbolic import Derivation, Step
from theory.theorem import Control, CoqProof, Theorem
from theory.theorems.common import max_abs

H, dh, dc, dr = sp.symbols("H d_head d_latent d_rope", positive=True)
kv_dims, latent_dims = sp.symbols("dim_KV dim_latent")
x1, w1, k1, k2 = sp.symbols("x_1 w_1 k_1 k_2")


def derivation() -> Derivation:
    return Derivation(
        title="Latent prefix between the hidden-state prefix and the per-head KV-prefix: a "
        "dimension count and the shared RoPE key",
        definitions=(
            (kv_dims, 2 * H * dh, "free numbers of a per-head KV-prefix per position and layer"),
            (latent_dims, dc + dr, "free numbers of a latent prefix (latent + RoPE key)"),
            (
                k1,
                w1 * x1,
                "the RoPE part of head 1's key from the shared k^R (one coordinate, any map)",
            ),
            (k2, w1 * x1, "head 2's RoPE part: the same shared key"),
        ),
        steps=(
            Step(
                kv_dims - latent_dims,
                2 * H * dh - dc - dr,
                "the KV-prefix has this many more numbers; positive in DeepSeek-V2's sizes (128 "
                "heads x (192 + 128) vs 512 + 64): the latent images form a proper subspace",
            ),
            Step(
                k1 - k2,
                0,
                "every head's RoPE part is the same vector in a latent prefix; a KV-prefix with "
                "different RoPE parts per head is no latent's image (n_heads > 1)",
            ),
        ),
        notes=(
            "The content parts and values of all heads are linear images of the d_latent-wide "
            "latent, [k^C_h, v_h]_h = c [W_UK^h, W_UV^h]_h: at most d_latent dimensions out of "
            "n_heads (d_nope + d_head). The converse direction (latent = hidden-state prefix iff "
            "[W_DKV  W_KR] has full column rank) is the rank statement of §3.6 (kv_converse) with "
            "[W_K; W_V] replaced by [W_DKV  W_KR]; the Coq proofs are general in every size.",
        ),
    )


def _kv_distance(arch, attn, keys, values):
    """Relative distance of a per-head KV-prefix of one layer from every latent's image."""
    n_p = keys.shape[1]
    nope = arch.d_head - arch.d_rope
    content = jnp.concatenate([keys[..., :nope], values], axis=-1)  # [H, n_p, dn + dh]
    target = jnp.swapaxes(content, 0, 1).reshape(n_p, -1)  # [n_p, H (dn + dh)]
    maps = jnp.concatenate([attn["W_UK"], attn["W_UV"]], axis=-1)  # [H, d_c, dn + dh]
    M = jnp.swapaxes(maps, 0, 1).reshape(arch.d_latent, -1)  # [d_c, H (dn + dh)]
    latent = jnp.linalg.lstsq(M.T, target.T)[0].T
    rope = keys[..., nope:]  # [H, n_p, d_rope]
    spread = max_abs(rope - jnp.mean(rope, axis=0, keepdims=True))
    scale = jnp.maximum(max_abs(target), max_abs(rope))
    return jnp.maximum(max_abs(latent @ M - target), spread) / scale


def _latent_distance(arch, attn, latents, rope_keys):
    """Relative distance of a latent prefix of one layer from every attention input's image."""
    n_p = latents.shape[0]
    unrotated = rotate(arch, rope_keys[:, None, :], -jnp.arange(n_p))[:, 0]  # undo R_p
    target = jnp.concatenate([latents, unrotated], axis=-1)  # [n_p, d_c + d_r]
    M = jnp.concatenate([attn["W_DKV"], attn["W_KR"]], axis=-1)  # [d, d_c + d_r]
    h = jnp.linalg.lstsq(M.T, target.T)[0].T  # [n_p, d]
    return max_abs(h @ M - target) / max_abs(target)


def check(arch, trial):
    ctx = trial.context
    gaps = []
    for l, bp in enumerate(trial.params["blocks"]):
        if isinstance(ctx, KVPrefix):
            gaps.append(_kv_distance(arch, bp["attn"], ctx.keys[l], ctx.values[l]))
        else:
            gaps.append(_latent_distance(arch, bp["attn"], ctx.latents[l], ctx.rope_keys[l]))
    return jnp.max(jnp.stack(gaps))


def full_column_rank(arch) -> bool:
    return arch.d_latent + arch.d_rope <= arch.d_model


def expect(arch, method):
    if method.name == "latent_prefix":
        dims = f"d_latent + d_rope = {arch.d_latent + arch.d_rope}"
        if full_column_rank(arch):
            return "holds", f"{dims} <= d_model = {arch.d_model}: latent prefix = prefix"
        return "fails", f"witness: {dims} > d_model = {arch.d_model}: a latent no state produces"
    return "fails", (
        "witness: a per-head KV-prefix no latent produces (own RoPE part per head, "
        f"{arch.n_heads} x {2 * arch.d_head - arch.d_rope} numbers from a {arch.d_latent}-wide "
        "latent)"
    )


def kv_of_a_latent(arch, trial):
    """A per-head KV-prefix made by a random latent prefix: no witness left (a control)."""
    shape = trial.context.keys.shape  # [L, H, n_p, dh]
    key_c, key_r = jax.random.split(jax.random.PRNGKey(3))
    dtype = trial.context.keys.dtype
    latents = jax.random.normal(key_c, (shape[0], shape[2], arch.d_latent), dtype)
    rope = jax.random.normal(key_r, (shape[0], shape[2], arch.d_rope), dtype)
    keys, values = [], []
    for l, bp in enumerate(trial.params["blocks"]):
        attn = bp["attn"]
        content = jnp.einsum("pc,hck->hpk", latents[l], attn["W_UK"])
        shared = jnp.broadcast_to(rope[l][None], (*content.shape[:2], arch.d_rope))
        keys.append(jnp.concatenate([content, shared], axis=-1))
        values.append(jnp.einsum("pc,hck->hpk", latents[l], attn["W_UV"]))
    return trial._replace(context=KVPrefix(jnp.stack(keys), jnp.stack(values)))


MEASURES = """\
KV-prefix: every layer, the relative least-squares residual of the per-head content keys and
values against the latents' images [c W_UK^h, c W_UV^h]_h, and the spread of the heads' RoPE parts
(one shared key in a latent prefix): how far the REFUTED claim "every KV-prefix is a latent
prefix" misses. Latent prefix: every layer, the relative least-squares residual of h [W_DKV  W_KR]
= [c_p, R_p^-1 k^R_p] (0 when the latent prefix is a hidden-state prefix's image)."""

THEOREM = Theorem(
    id="latent_strict",
    statement="Latent attention: latent prefix = hidden-state prefix iff [W_DKV  W_KR] has full "
    "column rank (d_latent + d_rope <= d_model); a per-head KV-prefix is strictly wider "
    "(witness).",
    section="§5.3.2",
    assumptions=(
        "about the attention input h (which h a pre-attention norm can output is not claimed)",
        "random weights: full column rank iff d_latent + d_rope <= d_model (generic)",
    ),
    derivation=derivation,
    check=check,
    measures=MEASURES,
    requires=("latent",),
    methods=("latent_prefix", "kv_prefix"),
    expect=expect,
    controls=(
        Control(
            "KV-prefix made by a latent",
            "the per-head keys and values a random latent prefix produces: the witness disappears",
            "deepseek",
            "kv_prefix",
            outcome="holds",
            transform=kv_of_a_latent,
        ),
        Control(
            "latent wider than the model",
            "d_latent + d_rope > d_model: a random latent prefix is no state's image",
            "deepseek",
            "latent_prefix",
            changes=(("d_latent", 40),),
        ),
    ),
    coq=CoqProof(
        names=(
            "Latent.latent_converse",
            "Latent.kv_not_latent",
            "Latent.shared_rope_witness",
        ),
        general_in=(
            "every d_model, latent size, RoPE size, number of heads and head dimension; an "
            "orthogonal rotation of the RoPE key"
        ),
        gap=(
            "As in kv_converse, the statement is about the attention input h; which h a "
            "pre-attention RMSNorm can output is not claimed."
        ),
    ),
)
