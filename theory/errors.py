"""User-facing errors.

Every problem with what a user passed in (shapes, names, vocabulary, lengths,
non-finite weights) raises :class:`ToolkitError`, whose message names what was
expected and what was given.  The CLI turns it into one line and exit code 2.
"""


class ToolkitError(ValueError):
    """Bad input to the toolkit: the message says what was expected and what was given."""


def unknown_name(kind: str, name: str, valid) -> ToolkitError:
    """Error for an unknown registry name, listing the valid ones."""
    valid = sorted(valid)
    return ToolkitError(f"unknown {kind} {name!r}; expected one of: {', '.join(valid)}")
