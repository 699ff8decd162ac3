"""The architecture zoo: every module in this package registers architectures (and the kinds they need).

Importing ``theory`` imports every module here (sorted by name), so adding a
variant is one new file in ``theory/zoo/``: ``verify``, ``verify --atlas``, the
property tests and the reports pick it up with no edit elsewhere.  A module
outside the package is loaded with ``prefix-theory verify --plugin
path/to/module.py`` (or a dotted module name), or by listing it in the
``PREFIX_THEORY_PLUGINS`` environment variable (``os.pathsep``-separated).
See docs/extending.md.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys

from theory.errors import ToolkitError

PLUGIN_ENV = "PREFIX_THEORY_PLUGINS"


def load_plugin(spec: str):
    """Import a registering module given as a dotted name or a path to a ``.py`` file."""
    if spec.endswith(".py") or os.sep in spec:
        path = os.path.abspath(spec)
        if not os.path.isfile(path):
            raise ToolkitError(
                f"plugin {spec!r}: expected a Python file or a module name, no such file {path}"
            )
        name = "prefix_theory_plugin_" + os.path.splitext(os.path.basename(path))[0]
        if name in sys.modules and getattr(sys.modules[name], "__file__", None) == path:
            return sys.modules[name]
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except ToolkitError:
            del sys.modules[name]
            raise
        except Exception as exc:
            del sys.modules[name]
            raise ToolkitError(
                f"plugin {spec!r} failed to load: {type(exc).__name__}: {exc}"
            ) from exc
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        raise ToolkitError(
            f"plugin {spec!r}: expected an importable module or a .py path ({exc})"
        ) from exc


def load_env_plugins():
    """Load every plugin named in ``$PREFIX_THEORY_PLUGINS``."""
    for spec in filter(None, os.environ.get(PLUGIN_ENV, "").split(os.pathsep)):
        load_plugin(spec)


for _info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
    importlib.import_module(f"{__name__}.{_info.name}")
