"""One registry type for every named thing the toolkit looks up.

Architectures, attention kinds, positional schemes, block kinds, methods and theorems each
live in a :class:`Registry`. All registries follow the same two rules:

* registering a name that is already taken is refused (a :class:`ToolkitError` naming the
  registry and the name), unless the caller says ``replace=True``;
* looking up an unknown name raises a :class:`ToolkitError` that lists the valid names and,
  when one is close, asks "did you mean ...?".

A registry is a read-mostly mapping from name to entry, in registration order. Item
assignment (``registry[name] = entry``, as ``pytest``'s ``monkeypatch.setitem`` does) is an
explicit replacement and is the same as ``register(entry, replace=True)`` under that name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Generic, TypeVar

from theory.errors import ToolkitError, unknown_name

T = TypeVar("T")


class Registry(MutableMapping, Generic[T]):
    """Named entries of one kind; ``kind`` is how errors call an entry (e.g. "architecture")."""

    def __init__(self, kind: str, validate: Callable[[T], object] | None = None):
        self.kind = kind
        self._validate = validate
        self._entries: dict[str, T] = {}

    def register(self, entry: T, name: str | None = None, *, replace: bool = False) -> T:
        """Add ``entry`` under ``name`` (default ``entry.name``, or ``entry.id``); returns it."""
        if name is None:
            name = getattr(entry, "name", None) or getattr(entry, "id", None)
        if not isinstance(name, str) or not name:
            raise ToolkitError(f"a {self.kind} needs a non-empty string name, got {name!r}")
        if name in self._entries and not replace:
            raise ToolkitError(
                f"a {self.kind} named {name!r} is already registered "
                "(pass replace=True to replace it)"
            )
        if self._validate is not None:
            self._validate(entry)
        self._entries[name] = entry
        return entry

    def lookup(self, name: str) -> T:
        """The entry called ``name`` (ToolkitError with the valid names otherwise)."""
        if not isinstance(name, str) or name not in self._entries:
            raise unknown_name(self.kind, name, self._entries)
        return self._entries[name]

    def __getitem__(self, name: str) -> T:
        return self.lookup(name)

    def __setitem__(self, name: str, entry: T) -> None:
        self.register(entry, name, replace=True)

    def __delitem__(self, name: str) -> None:
        if name not in self._entries:
            raise unknown_name(self.kind, name, self._entries)
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"


# The toolkit's registries (entries are added by the modules that define them).
ARCHITECTURES: Registry = Registry("architecture")
ATTENTION_KINDS: Registry = Registry("attention kind")
POSITIONAL_SCHEMES: Registry = Registry("positional scheme")
BLOCK_KINDS: Registry = Registry("block kind")
METHODS: Registry = Registry("method")
THEOREMS: Registry = Registry("theorem")
