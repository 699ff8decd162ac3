"""Multi-head latent attention: hidden-state prefix ⊆ latent prefix ⊆ per-head KV-prefix
(docs/theory.md §5.3.1).

Each inclusion is constructive, as in docs/theory.md §1.5: a hidden-state prefix ``s`` is the
latent prefix of the latents ``c_p = LN(s_p) W_DKV`` and RoPE keys ``k^R_p = R_p LN(s_p) W_KR``
it produces; a latent prefix is the per-head KV-prefix of the keys ``[c_p W_UK ; k^R_p]`` and
values ``c_p W_UV`` it produces. The check builds the wider context from the narrower run's cache
and compares the logits. Strictness is ``latent_strict``.
"""

import jax
import jax.numpy as jnp
import sympy as sp

from theory.context import KVPrefix, LatentPrefix, Prefix, n_virtual
from theory.hooks import act_name
from theory.model import forward
from theory.symbolic import Derivation, Step
from theory.theorem import Control, CoqProof, Theorem
from theory.theorems.common import max_abs

h, W_DKV, W_KR, R_p, W_UK, W_UV = sp.symbols("h W_DKV W_KR R_p W_UK W_UV")
c, kR, kC, v = sp.symbols("c_p k^R_p k^C_p v_p")


def derivation() -> Derivation:
    return Derivation(
        title="Latent attention: a hidden-state prefix is a latent prefix, a latent prefix is a "
        "per-head KV-prefix (constructive)",
        definitions=(
            (c, W_DKV * h, "the latent a virtual state's attention input h produces"),
            (kR, R_p * W_KR * h, "its RoPE key, rotated by the virtual position"),
            (kC, W_UK * c, "the content part of each head's key, from the latent"),
            (v, W_UV * c, "each head's value, from the latent"),
        ),
        steps=(
            Step(
                kC,
                W_UK * W_DKV * h,
                "prefix ⊆ latent: the latent prefix (c_p, k^R_p) gives attention the same keys ...",
            ),
            Step(v, W_UV * W_DKV * h, "... and values; nothing else of a virtual position is read"),
            Step(
                kC - W_UK * c,
                0,
                "latent ⊆ KV: the per-head KV-prefix ([c_p W_UK ; k^R_p], c_p W_UV) feeds every "
                "head the keys and values the latent makes",
            ),
        ),
        notes=(
            "Scalars stand for vectors and maps (each step is an identity of the same shape). The "
            "numeric check replays each narrower run through the next wider context and compares "
            "the logits of every content position.",
        ),
    )


def wider(arch, context, cache):
    """The next wider context reproducing ``context`` (from the narrower run's cache)."""
    n_p = n_virtual(context)
    layers = range(arch.n_layers)
    if isinstance(context, Prefix):
        return LatentPrefix(
            jnp.stack([cache[act_name("latent", l)][:n_p] for l in layers]),
            jnp.stack([cache[act_name("rope_key", l)][:n_p] for l in layers]),
        )
    if isinstance(context, LatentPrefix):
        keys = jnp.stack([cache[act_name("k", l)][:n_p] for l in layers])  # [L, n_p, H, dh]
        values = jnp.stack([cache[act_name("v", l)][:n_p] for l in layers])
        return KVPrefix(jnp.swapaxes(keys, 1, 2), jnp.swapaxes(values, 1, 2))
    raise TypeError(f"latent_hierarchy: expected a Prefix or LatentPrefix, got {type(context)}")


def replay_residual(arch, trial, build=wider):
    def run(context):
        return forward(
            trial.params,
            arch,
            trial.tokens,
            context,
            position_offset=n_virtual(trial.context),
            attention_mask=trial.key_mask,
            validate=False,
        )

    logits, cache = run(trial.context)
    return max_abs(logits - run(build(arch, trial.context, cache))[0])


def check(arch, trial):
    return replay_residual(arch, trial)


def slightly_wrong_check(arch, trial):
    """A deliberately wrong construction: the wider context off by 1e-3 (a control)."""

    def off(arch, context, cache):
        return jax.tree_util.tree_map(lambda x: x + 1e-3, wider(arch, context, cache))

    return replay_residual(arch, trial, off)


MEASURES = """\
The narrower run's context becomes the next wider one (hidden-state prefix -> the latents and
RoPE keys it produces; latent prefix -> the per-head keys and values its latents produce), read
from the narrower run's cache; max |logits gap| over every content position."""

THEOREM = Theorem(
    id="latent_hierarchy",
    statement="Latent attention: hidden-state prefix ⊆ latent prefix (c_p, k^R_p) ⊆ per-head "
    "KV-prefix; the wider context built from the narrower one gives identical logits.",
    section="§5.3.1",
    assumptions=(
        "keys and values of every head come from one latent per position, plus a RoPE key "
        "shared by the heads",
        "content at the same positions; keys after the virtual position's rotation",
    ),
    derivation=derivation,
    check=check,
    measures=MEASURES,
    requires=("latent",),
    methods=("prefix", "latent_prefix"),
    controls=tuple(
        Control(
            f"wrong construction ({method})",
            "the wider context built slightly wrong (every entry off by 1e-3)",
            "deepseek",
            method,
            check=slightly_wrong_check,
        )
        for method in ("prefix", "latent_prefix")
    ),
    coq=CoqProof(
        names=("Latent.prefix_as_latent", "Latent.latent_as_kv"),
        general_in=(
            "every number of heads, latent size, head and RoPE dimensions, and any maps (so any "
            "norm before attention, biases, rotations), every n, n_p"
        ),
        gap=(
            "The inclusions hold by the definitions of the contexts (the wider context is built "
            "from the narrower one's maps), as for hierarchy; the layer is modelled by its maps, "
            "not as the toolkit's block."
        ),
    ),
)
