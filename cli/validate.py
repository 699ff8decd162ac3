"""Command-line input checked before any work, one helper per concern.

* numbers (argparse ``type=`` functions, so a bad value is a one-line usage error, exit 2):
  :func:`seed` (an int in [0, 2^32)), :func:`int_at_least` (sizes, counts),
  :func:`temperature` (a number in (0, 1e6]);
* output paths (:func:`output_file`, :func:`output_dir`): called at the start of a command, so
  an unwritable ``--json``/``--out`` fails in a second, not after minutes of work; nothing is
  left behind by the check.

A failed output check raises :class:`theory.errors.ToolkitError` naming the option, what was
expected and what was given (the command line prints it in one line and exits 2).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile

from theory.errors import ToolkitError
from theory.trials import SEED_BOUND


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def seed(text: str) -> int:
    """A seed: any integer in [0, 2^32) (what ``jax.random.PRNGKey`` and numpy accept)."""
    value = _int(text)
    if not 0 <= value < SEED_BOUND:
        raise argparse.ArgumentTypeError(f"expected an int in [0, 2^32), got {text}")
    return value


def int_at_least(low: int):
    """``type=`` for an integer >= ``low`` (a size or a count)."""

    def parse(text: str) -> int:
        value = _int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an int >= {low}, got {text}")
        return value

    parse.__name__ = f"int >= {low}"
    return parse


def temperature(text: str) -> float:
    """An inverse temperature: a number in (0, T_MAX] (constructions.common.T_MAX)."""
    from constructions.common import T_MAX

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or not 0 < value <= T_MAX:
        raise argparse.ArgumentTypeError(f"expected a number in (0, {T_MAX:g}], got {text}")
    return value


def _probe_directory(directory: str, flag: str, path) -> None:
    """Create and remove an empty folder in ``directory`` (proves that writing there works)."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".prefix-theory-probe-", dir=directory))
    except OSError as exc:
        raise ToolkitError(
            f"{flag}: expected a path where a file can be written, got {str(path)!r} "
            f"({directory} is not writable: {exc.strerror or exc})"
        ) from None


def output_file(path, flag: str, suffix: str | None = None) -> None:
    """``path`` can be written as a file: its folder exists and is writable, it is no folder
    (and, given ``suffix``, its name ends with it: the format is chosen by the name)."""
    if path is None:
        return
    path = os.fspath(path)
    if not path or os.path.isdir(path):
        raise ToolkitError(f"{flag}: expected a file path, got the folder {path!r}")
    if suffix is not None and not path.lower().endswith(suffix):
        raise ToolkitError(f"{flag}: expected a file name ending in {suffix}, got {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ToolkitError(
            f"{flag}: expected a file path in an existing folder, got {path!r} "
            f"({folder} does not exist)"
        )
    if os.path.exists(path):
        try:
            with open(path, "a"):
                pass
        except OSError as exc:
            raise ToolkitError(
                f"{flag}: expected a writable file, got {path!r} ({exc.strerror or exc})"
            ) from None
        return
    _probe_directory(folder, flag, path)


def output_dir(path, flag: str) -> None:
    """``path`` is a folder that exists or can be created, and files can be written in it."""
    if path is None:
        return
    path = os.fspath(path)
    if not path:
        raise ToolkitError(f"{flag}: expected a folder, got an empty path")
    full = os.path.abspath(path)
    if os.path.exists(full) and not os.path.isdir(full):
        raise ToolkitError(f"{flag}: expected a folder, got the file {path!r}")
    existing = full
    while not os.path.exists(existing):  # the nearest folder that exists, where it is created
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ToolkitError(f"{flag}: expected a folder, got {path!r} ({existing} is a file)")
    _probe_directory(existing, flag, path)
