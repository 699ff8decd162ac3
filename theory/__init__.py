"""prefix-theory's core: checks of the theory of context-based fine-tuning (Petrov, Torr, Bibi,
ICLR 2024), stated in docs/theory.md.

Importing ``theory`` registers the built-in architectures, attention kinds, positional schemes,
block kinds, methods and theorems, and changes nothing else in the process: JAX's configuration
and the environment stay as they were. Before verifying, call :func:`configure_jax` once
(float64 and an XLA CPU workaround, see :mod:`theory.runtime`); the command line and the test
suite do. Plug-ins load only when asked (:func:`load_plugin`).

The core imports only numpy, jax, jaxtyping, sympy and itself.
"""

from theory import architectures as _builtin_architectures  # noqa: F401  (registers)
from theory import theorems as _builtin_theorems  # noqa: F401  (registers)
from theory import zoo as _builtin_zoo  # noqa: F401  (registers the atlas variants)
from theory.architecture import Architecture, get_architecture, register_architecture
from theory.attention import AttentionKind, register_attention
from theory.blocks import BlockKind, register_block
from theory.context import (
    HardPrompt,
    InitialState,
    KVPrefix,
    LatentPrefix,
    Prefix,
    SoftPrompt,
    n_virtual,
)
from theory.errors import ToolkitError
from theory.hooks import act_name
from theory.methods import Method, get_method, register_method
from theory.model import block_forward, forward
from theory.params import init_params, param_shapes, validate_params
from theory.positional import PositionalScheme, register_positional
from theory.registry import (
    ARCHITECTURES,
    ATTENTION_KINDS,
    BLOCK_KINDS,
    METHODS,
    POSITIONAL_SCHEMES,
    THEOREMS,
    Registry,
)
from theory.runtime import configure_jax
from theory.theorem import Control, CoqProof, Theorem, get_theorem, register_theorem
from theory.tolerances import TOL_F32, TOL_F64, VIOLATION
from theory.trials import Trial, TrialShape, draw_trial
from theory.zoo import load_env_plugins, load_plugin

__all__ = [
    "ARCHITECTURES",
    "ATTENTION_KINDS",
    "BLOCK_KINDS",
    "METHODS",
    "POSITIONAL_SCHEMES",
    "THEOREMS",
    "TOL_F32",
    "TOL_F64",
    "VIOLATION",
    "Architecture",
    "AttentionKind",
    "BlockKind",
    "Control",
    "CoqProof",
    "HardPrompt",
    "InitialState",
    "KVPrefix",
    "LatentPrefix",
    "Method",
    "PositionalScheme",
    "Prefix",
    "Registry",
    "SoftPrompt",
    "Theorem",
    "ToolkitError",
    "Trial",
    "TrialShape",
    "act_name",
    "block_forward",
    "configure_jax",
    "draw_trial",
    "forward",
    "get_architecture",
    "get_method",
    "get_theorem",
    "init_params",
    "load_env_plugins",
    "load_plugin",
    "n_virtual",
    "param_shapes",
    "register_architecture",
    "register_attention",
    "register_block",
    "register_method",
    "register_positional",
    "register_theorem",
    "validate_params",
]
