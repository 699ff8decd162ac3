"""Built-in maps for the conditional constructions (the companion code's demonstrations)."""

from __future__ import annotations

import json

import numpy as np

from constructions.vocab import ASCII, Vocabulary
from theory.errors import ToolkitError

ANIMALS = [
    "ant",
    "bear",
    "cat",
    "dog",
    "eagle",
    "fox",
    "goat",
    "horse",
    "ibis",
    "jaguar",
    "koala",
    "lion",
    "mouse",
    "newt",
    "owl",
    "panda",
    "quail",
    "rabbit",
    "snake",
    "tiger",
    "urchin",
    "viper",
    "wolf",
    "xerus",
    "yak",
    "zebra",
]
FOODS = [
    "apple",
    "bread",
    "cake",
    "donut",
    "egg",
    "fig",
    "grape",
    "honey",
    "icecream",
    "jam",
    "kiwi",
    "lemon",
    "mango",
    "noodles",
    "olive",
    "pizza",
    "quiche",
    "rice",
    "soup",
    "toast",
    "udon",
    "vanilla",
    "waffle",
    "xigua",
    "yogurt",
    "zucchini",
]
PAD = " "
EXAMPLES = ("swapcase", "animals")


def swapcase_map(vocab: Vocabulary = ASCII) -> dict[str, str]:
    """Letters to the other case; every other character to itself."""
    return {c: c.swapcase() if c.swapcase() in vocab.chars else c for c in vocab.chars}


def animals_map(vocab: Vocabulary = ASCII) -> dict[str, str]:
    """Capital letters to animal names, small letters
    to foods, anything else to nothing (padding)."""
    out = {c: "" for c in vocab.chars}
    for i, letter in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ"):
        out[letter] = ANIMALS[i]
        out[letter.lower()] = FOODS[i]
    return out


def example_map(name: str, vocab: Vocabulary = ASCII) -> dict[str, str]:
    if name == "swapcase":
        return swapcase_map(vocab)
    if name == "animals":
        return animals_map(vocab)
    raise ToolkitError(f"unknown example map {name!r}; expected one of: {', '.join(EXAMPLES)}")


def load_map(path: str, vocab: Vocabulary = ASCII) -> tuple[dict[str, str], list[str]]:
    """A user map from a JSON object ``{"a": "response", ...}`` (single-character keys).

    Characters not given map to themselves; returns (map, the characters defaulted) so
    that the caller can say so (nothing is dropped silently).
    """
    try:
        with open(path) as fh:
            raw = json.load(fh)
    except OSError as exc:
        raise ToolkitError(f"map file {path!r}: cannot read it ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise ToolkitError(
            f'map file {path!r}: expected a JSON object {{"a": "b", ...}}, got invalid JSON ({exc})'
        ) from exc
    if not isinstance(raw, dict) or not raw:
        raise ToolkitError(
            f"map file {path!r}: expected a non-empty JSON object of single characters to strings, "
            f"got {type(raw).__name__}"
        )
    for key, value in raw.items():
        if len(key) != 1:
            raise ToolkitError(f"map file {path!r}: keys must be single characters, got {key!r}")
        vocab.encode(key, what=f"map key {key!r}")
        if not isinstance(value, str):
            raise ToolkitError(
                f"map file {path!r}: value for {key!r} must be a string, got {value!r}"
            )
        vocab.encode(value, what=f"map value for {key!r}")
    defaulted = [c for c in vocab.chars if c not in raw]
    full = {c: raw.get(c, c) for c in vocab.chars}
    return full, defaulted


def map_table(
    mapping: dict[str, str], vocab: Vocabulary = ASCII, N0: int | None = None
) -> np.ndarray:
    """The table ``[V, N0]`` of response token ids (responses padded with spaces to N0)."""
    longest = max(len(v) for v in mapping.values())
    N0 = max(1, longest) if N0 is None else N0
    if longest > N0:
        raise ToolkitError(
            f"map: a response of {longest} characters is longer than N0={N0}; use N0 >= {longest}"
        )
    if PAD not in vocab.chars and any(len(v) < N0 for v in mapping.values()):
        raise ToolkitError(
            "map: responses of different lengths need the space character in the vocabulary"
        )
    table = np.zeros((vocab.size, N0), np.int64)
    for i, c in enumerate(vocab.chars):
        table[i] = vocab.encode(mapping[c].ljust(N0, PAD), what=f"response to {c!r}")
    return table
