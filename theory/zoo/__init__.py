"""The architecture zoo and user plug-ins.

Every module in this package registers architectures (and the kinds they need); ``theory``
imports them all (sorted by name), so adding a built-in variant is one new file here: ``verify``,
``verify --atlas``, the property tests and the reports pick it up with no edit elsewhere.

A module outside the package is a *plug-in*, loaded only when asked: by the command line's
``--plugin path/to/module.py`` (or a dotted module name), by the ``PREFIX_THEORY_PLUGINS``
environment variable that the command line and the test suite read, or by calling
:func:`load_plugin` / :func:`load_env_plugins` yourself. Importing ``theory`` loads none.
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
    if spec in sys.modules:
        return sys.modules[spec]
    try:
        return importlib.import_module(spec)
    except ToolkitError:
        raise
    except ModuleNotFoundError as exc:
        raise ToolkitError(
            f"plugin {spec!r}: expected an importable module or a .py path ({exc})"
        ) from exc
    except Exception as exc:
        raise ToolkitError(f"plugin {spec!r} failed to load: {type(exc).__name__}: {exc}") from exc


def env_plugin_specs() -> list[str]:
    """The plug-ins named in ``$PREFIX_THEORY_PLUGINS`` (``os.pathsep``-separated)."""
    return [spec for spec in os.environ.get(PLUGIN_ENV, "").split(os.pathsep) if spec]


def load_env_plugins() -> list:
    """Load every plug-in named in ``$PREFIX_THEORY_PLUGINS``; returns the modules."""
    return [load_plugin(spec) for spec in env_plugin_specs()]


def _import_builtin_variants() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        importlib.import_module(f"{__name__}.{info.name}")


_import_builtin_variants()
