"""prefix-theory: checks of the theory of context-based fine-tuning (Petrov, Torr, Bibi, ICLR 2024).

Importing ``theory`` enables float64 in JAX (verification runs in float64; code
that wants float32, such as training, passes ``dtype=jnp.float32`` explicitly)
and registers the built-in architectures, methods and theorems.  It also sets
the XLA CPU flags of :mod:`theory.xla_cpu` (a runtime deadlock workaround).
"""

import jax

from theory import xla_cpu

xla_cpu.apply()
jax.config.update("jax_enable_x64", True)

from theory.architecture import ARCHITECTURES, Architecture, get_architecture, register_architecture  # noqa: E402
from theory.attention import ATTENTION_KINDS, AttentionKind, register_attention  # noqa: E402
from theory.context import HardPrompt, KVPrefix, Prefix, SoftPrompt, n_virtual  # noqa: E402
from theory.errors import ToolkitError  # noqa: E402
from theory.methods import METHODS, Method, get_method, register_method  # noqa: E402
from theory.model import block_forward, forward  # noqa: E402
from theory.params import init_params, param_shapes, validate_params  # noqa: E402
from theory.positional import POSITIONAL_SCHEMES, PositionalScheme, register_positional  # noqa: E402
from theory.registry import THEOREMS, Theorem, get_theorem, register_theorem  # noqa: E402
from theory.tolerances import TOL_F32, TOL_F64  # noqa: E402
from theory.trials import Trial, TrialShape, draw_trial  # noqa: E402
import theory.architectures  # noqa: E402,F401  (registers the built-in architectures)
import theory.theorems  # noqa: E402,F401  (registers the built-in theorems)
import theory.zoo  # noqa: E402,F401  (registers the atlas architectures: every module in theory/zoo/)

theory.zoo.load_env_plugins()  # modules named in $PREFIX_THEORY_PLUGINS (docs/extending.md)

__all__ = [
    "ARCHITECTURES",
    "ATTENTION_KINDS",
    "Architecture",
    "AttentionKind",
    "HardPrompt",
    "KVPrefix",
    "METHODS",
    "Method",
    "POSITIONAL_SCHEMES",
    "PositionalScheme",
    "Prefix",
    "SoftPrompt",
    "THEOREMS",
    "TOL_F32",
    "TOL_F64",
    "Theorem",
    "ToolkitError",
    "Trial",
    "TrialShape",
    "block_forward",
    "draw_trial",
    "forward",
    "get_architecture",
    "get_method",
    "get_theorem",
    "init_params",
    "n_virtual",
    "param_shapes",
    "register_architecture",
    "register_attention",
    "register_method",
    "register_positional",
    "register_theorem",
    "validate_params",
]
