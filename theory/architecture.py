"""Architectures as data.

An :class:`Architecture` is a frozen (hashable) description of a transformer:
sizes, positional scheme, norm placement, attention kind, masking.  It is a
static argument of every jitted function, so two equal descriptions share one
compilation.  ``init_params`` (in :mod:`theory.params`) draws random weights for
it from a seed.

Notation (docs/theory.md §1.1, TransformerLens names):
  d_model  hidden size ``d``          n_heads  heads per layer ``H``
  d_head   key/query/value size ``k`` d_vocab  vocabulary size ``V``
  n_ctx    number of positions        d_mlp    MLP hidden width (0: no MLP)
  temperature  the inverse temperature ``T`` multiplying every attention logit
  d_state  state size per channel of a recurrent block (docs/theory.md §5.1)
  d_latent, d_rope  latent attention: shared key/value latent, decoupled RoPE key (§5.3)

:attr:`Architecture.features` names what its layers provide (declared by the block kind and,
for attention blocks, the attention kind); theorems and methods name the features they need.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from theory.errors import ToolkitError, unknown_name
from theory.registry import ARCHITECTURES, ATTENTION_KINDS, BLOCK_KINDS, POSITIONAL_SCHEMES

NORM_PLACEMENTS = ("pre", "post", "none")
NORM_KINDS = ("layernorm", "rmsnorm")
MLP_ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "gated_gelu", "gated_silu")


@dataclass(frozen=True)
class Architecture:
    """A transformer architecture (static, hashable).

    ``expectations`` lists exceptions to the default expectation of a theorem
    on this architecture as ``(theorem_id, "holds"|"fails", reason)``; every
    theorem not listed is expected to hold for context-based methods.
    """

    name: str
    n_layers: int
    n_heads: int
    d_model: int
    d_head: int
    d_mlp: int
    d_vocab: int
    n_ctx: int
    positional: str = "learned"  # key of theory.positional.POSITIONAL_SCHEMES
    attention: str = "softmax"  # key of theory.attention.ATTENTION_KINDS
    norm: str = "pre"  # "pre" | "post" | "none"
    norm_kind: str = "layernorm"  # "layernorm" | "rmsnorm"
    norm_eps: float = 1e-5
    causal: bool = True
    n_kv_heads: int | None = None  # None: one key/value head per head
    rope_base: float | None = None  # RoPE base theta (None: the scheme's default, 10000)
    window: int | None = None  # sliding-window width (keys i-window < j <= i)
    parallel: bool = False  # GPT-J style: attention and MLP read the same input
    mlp_act: str = "gelu"
    mlp_depth: int = 1  # number of hidden layers of the MLP
    qk_norm: bool = False  # normalise queries and keys per head
    temperature: float = 1.0  # inverse temperature T
    embed_norm: bool = False  # norm after the embedding (BERT)
    final_norm: bool = True  # norm before the unembedding (only with norm="pre")
    n_token_types: int = 0  # BERT token-type embeddings (0: none)
    block: str = "standard"  # key of theory.blocks.BLOCK_KINDS ("standard": the fields above)
    d_state: int = 0  # recurrent blocks: state size per channel
    d_latent: int = 0  # latent attention: size of the key/value latent
    d_rope: int = 0  # latent attention: size of the decoupled RoPE part of each key
    # methods a default `verify` runs here (empty: all; see docs/atlas.md)
    default_methods: tuple = ()
    default_run: bool = True  # checked by a `verify` that names nothing (False: only when named)
    description: str = ""
    expectations: tuple = ()  # ((theorem_id, "holds"|"fails", reason), ...)
    negative_control: bool = False  # deliberately broken: expected to violate theorems

    @property
    def kv_heads(self) -> int:
        """Number of key/value heads (``n_heads`` unless multi-/grouped-query)."""
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def features(self) -> frozenset:
        """What the layers provide: the block kind's features and, for attention blocks, the
        attention kind's (see :mod:`theory.blocks`); ``Theorem.requires`` and
        ``Method.requires`` name features."""
        found = set(BLOCK_KINDS[self.block].features)
        if "attention" in found:
            found |= set(ATTENTION_KINDS[self.attention].features)
        return frozenset(found)

    def replace(self, **changes) -> Architecture:
        """A copy with some fields changed (validated)."""
        return validate_architecture(dataclasses.replace(self, **changes))

    def expectation(self, theorem_id: str) -> tuple[str, str] | None:
        """(expected, reason) declared by this architecture for a theorem, or None."""
        for tid, expected, reason in self.expectations:
            if tid == theorem_id:
                return expected, reason
        return None


def meets(arch: Architecture, requires: tuple) -> bool:
    """Whether ``arch`` has every feature ``requires`` names and none it names as ``"!name"``."""
    features = arch.features
    return all((f[1:] not in features) if f.startswith("!") else (f in features) for f in requires)


def validate_architecture(arch: Architecture) -> Architecture:
    """Check an architecture's fields; raise ToolkitError naming the bad field."""
    for field in ("n_layers", "n_heads", "d_model", "d_head", "d_vocab", "n_ctx", "mlp_depth"):
        value = getattr(arch, field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ToolkitError(
                f"architecture {arch.name!r}: {field} must be a positive int, got {value!r}"
            )
    for field in ("d_mlp", "d_state", "d_latent", "d_rope"):
        value = getattr(arch, field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ToolkitError(
                f"architecture {arch.name!r}: {field} must be an int >= 0, got {value!r}"
            )
    POSITIONAL_SCHEMES.lookup(arch.positional)
    ATTENTION_KINDS.lookup(arch.attention)
    if arch.norm not in NORM_PLACEMENTS:
        raise unknown_name("norm placement", arch.norm, NORM_PLACEMENTS)
    if arch.norm_kind not in NORM_KINDS:
        raise unknown_name("norm kind", arch.norm_kind, NORM_KINDS)
    if arch.mlp_act not in MLP_ACTIVATIONS:
        raise unknown_name("MLP activation", arch.mlp_act, MLP_ACTIVATIONS)
    block_kind = BLOCK_KINDS.lookup(arch.block)
    missing = block_kind.requires(arch) if block_kind.requires is not None else None
    if missing:
        raise ToolkitError(f"architecture {arch.name!r}: block {arch.block!r} needs {missing}")
    if not isinstance(arch.default_methods, tuple):
        raise ToolkitError(
            f"architecture {arch.name!r}: default_methods must be a tuple of method names, "
            f"got {arch.default_methods!r}"
        )
    if arch.n_kv_heads is not None and (
        not isinstance(arch.n_kv_heads, int) or arch.n_kv_heads < 1
    ):
        raise ToolkitError(
            f"architecture {arch.name!r}: n_kv_heads must be a positive int or None, "
            f"got {arch.n_kv_heads!r}"
        )
    if arch.n_heads % arch.kv_heads:
        raise ToolkitError(
            f"architecture {arch.name!r}: n_kv_heads must divide n_heads={arch.n_heads}, "
            f"got {arch.n_kv_heads}"
        )
    if arch.window is not None and arch.window < 1:
        raise ToolkitError(
            f"architecture {arch.name!r}: window must be >= 1 or None, got {arch.window}"
        )
    if arch.parallel and arch.norm == "post":
        raise ToolkitError(
            f"architecture {arch.name!r}: parallel blocks need norm 'pre' or 'none', got 'post'"
        )
    if arch.rope_base is not None and (
        POSITIONAL_SCHEMES[arch.positional].rotate is None
        or not isinstance(arch.rope_base, (int, float))
        or arch.rope_base <= 1
    ):
        raise ToolkitError(
            f"architecture {arch.name!r}: rope_base needs a rotary positional scheme and a "
            f"number > 1, got rope_base={arch.rope_base!r} with positional={arch.positional!r}"
        )
    if arch.positional == "rope" and arch.d_head % 2:
        raise ToolkitError(
            f"architecture {arch.name!r}: RoPE needs an even d_head, got {arch.d_head}"
        )
    for entry in arch.expectations:
        if len(entry) != 3 or entry[1] not in ("holds", "fails"):
            raise ToolkitError(
                f"architecture {arch.name!r}: expectations must be "
                f"(theorem_id, 'holds'|'fails', reason), got {entry!r}"
            )
    return arch


def register_architecture(arch: Architecture, *, replace: bool = False) -> Architecture:
    """Add an architecture to the registry (``verify`` and the property tests pick it up)."""
    return ARCHITECTURES.register(validate_architecture(arch), replace=replace)


def get_architecture(name: str) -> Architecture:
    """Registered architecture by name (ToolkitError listing valid names otherwise)."""
    return ARCHITECTURES.lookup(name)
