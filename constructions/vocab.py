"""Character vocabularies: text <-> token ids, with clear errors.

The default vocabulary is printable ASCII: the space and the 94 graphic characters
``!`` .. ``~`` (95 tokens; the 94 graphic characters alone cannot write the demo
sentence "I love transformers!", which has spaces).  ``Vocabulary(chars)`` builds
any other one.
"""

from __future__ import annotations

from dataclasses import dataclass

from theory.errors import ToolkitError

GRAPHIC = "".join(chr(c) for c in range(33, 127))  # the 94 printable graphic characters
PRINTABLE = " " + GRAPHIC  # plus the space: 95 tokens


@dataclass(frozen=True)
class Vocabulary:
    chars: str

    def __post_init__(self):
        if len(set(self.chars)) != len(self.chars) or len(self.chars) < 2:
            raise ToolkitError(
                f"vocabulary: expected at least 2 distinct characters, got {self.chars!r}"
            )

    @property
    def size(self) -> int:
        return len(self.chars)

    def encode(self, text: str, what: str = "text") -> list[int]:
        """Token ids of ``text``; ToolkitError naming the first character outside the vocabulary."""
        index = {c: i for i, c in enumerate(self.chars)}
        for pos, ch in enumerate(text):
            if ch not in index:
                raise ToolkitError(
                    f"{what}: character {ch!r} at index {pos} is outside the "
                    f"vocabulary of {self.size} characters ({self.describe()}); use "
                    "only those characters or pass a vocabulary that contains it"
                )
        return [index[c] for c in text]

    def decode(self, ids) -> str:
        return "".join(
            self.chars[int(i)] if 0 <= int(i) < self.size else "\N{REPLACEMENT CHARACTER}"
            for i in ids
        )

    def describe(self) -> str:
        if self.chars == PRINTABLE:
            return "printable ASCII: space and '!'..'~'"
        if self.chars == GRAPHIC:
            return "printable ASCII '!'..'~'"
        return repr(self.chars if len(self.chars) <= 40 else self.chars[:37] + "...")


ASCII = Vocabulary(PRINTABLE)
