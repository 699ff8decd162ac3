"""Errors of the proof runner (this package imports no other project package)."""


class ProofsError(ValueError):
    """Bad input to the proof runner, e.g. an unknown theorem id; the message says what was
    expected and what was given."""


class CoqNotFound(RuntimeError):
    """coqc, or a Coq library the development needs, is missing; the message gives the
    command that installs it."""
