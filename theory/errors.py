"""User-facing errors.

Every problem with what a user passed in (shapes, names, vocabulary, lengths,
non-finite weights) raises :class:`ToolkitError`, whose message names what was
expected and what was given. The command line turns it into one line and exit code 2.
"""

import difflib


class ToolkitError(ValueError):
    """Bad input to the toolkit: the message says what was expected and what was given."""


class UnknownName(ToolkitError, KeyError):
    """A name that no registry entry has (also a ``KeyError``, so mappings behave as usual)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def unknown_name(kind: str, name: object, valid) -> UnknownName:
    """Error for an unknown name: lists the valid ones and suggests the closest."""
    valid = sorted(str(v) for v in valid)
    hint = ""
    if isinstance(name, str):
        close = difflib.get_close_matches(name, valid, n=1)
        if close:
            hint = f" (did you mean {close[0]!r}?)"
    listing = ", ".join(valid) if valid else "(none registered)"
    return UnknownName(f"unknown {kind} {name!r}{hint}; expected one of: {listing}")
