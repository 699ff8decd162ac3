"""The synthetic digit tasks of docs/theory.md §4 (the paper's minGPT experiments).

An input ``x`` is ``N_DIGITS = 10`` digits from ``0..7`` (``N_INPUT_SYMBOLS = 8``);
the output ``y`` is 10 tokens of the vocabulary ``0..9`` (``D_VOCAB = 10``, so that
``add2`` fits).  A training sequence is ``concat(x, y)`` (20 tokens); the model reads
its first 19 and is trained with teacher forcing on the predictions of ``y``.

Tasks (``y`` as a function of ``x``):

  ascending       sorted(x)
  descending      sorted(x), largest first
  add1, add2      x_i + 1, x_i + 2
  ascending_add1  sorted(x) + 1
  double_hist     for each position i, how often x_i occurs in x (clipped at 9:
                  only the 8 inputs with one repeated digit would need the token 10)
  random          pretraining mixture: sample k gets task ``RANDOM_TASKS[k % 4]``
                  (round robin over the first four), with no indication of which

Sampling: digits are uniform; half of the samples (every odd sample index) are
redrawn until they have at most ``MAX_DISTINCT = 5`` distinct digits
("repeat boosting").  Split: an input is in the test set iff its stable hash
(:func:`stable_hash`, a fixed 64-bit mixer of the base-8 code of ``x``, identical
in every process, unlike the companion code's Python ``hash()``) is 0 mod 4, so
25% of all inputs are test inputs.  Every draw takes a seed (numpy Generator).
"""

from __future__ import annotations

import numpy as np

from theory.errors import ToolkitError, unknown_name

N_DIGITS = 10
N_INPUT_SYMBOLS = 8
D_VOCAB = 10
SEQ_LEN = 2 * N_DIGITS  # x then y
MODEL_LEN = SEQ_LEN - 1  # tokens the model reads (the last target is never an input)
MAX_DISTINCT = 5
TEST_SHARE_MOD = 4  # hash % 4 == 0: test (25%)

RANDOM_TASKS = ("ascending", "descending", "add1", "add2")


def _ascending(x):
    return np.sort(x, axis=-1)


def _descending(x):
    return np.sort(x, axis=-1)[..., ::-1]


def _double_hist(x):
    counts = (x[..., :, None] == x[..., None, :]).sum(-1)
    return np.minimum(counts, D_VOCAB - 1)


TASKS = {
    "ascending": _ascending,
    "descending": _descending,
    "add1": lambda x: x + 1,
    "add2": lambda x: x + 2,
    "ascending_add1": lambda x: _ascending(x) + 1,
    "double_hist": _double_hist,
}
ALL_TASKS = tuple(TASKS) + ("random",)


def check_task(name: str) -> str:
    """Return ``name`` if it is a known task, else raise ToolkitError listing them."""
    if name not in ALL_TASKS:
        raise unknown_name("task", name, ALL_TASKS)
    return name


def target(task: str, x: np.ndarray, index: np.ndarray | None = None) -> np.ndarray:
    """Outputs ``y [..., 10]`` for inputs ``x [..., 10]``.

    For ``random`` the sample indices ``index [...]`` choose the task round robin.
    """
    check_task(task)
    x = np.asarray(x)
    if task != "random":
        return TASKS[task](x).astype(np.int32)
    if index is None:
        raise ToolkitError("task 'random' needs the sample indices (it assigns tasks round robin)")
    outs = np.stack([TASKS[t](x) for t in RANDOM_TASKS])  # [4, ..., 10]
    which = np.asarray(index) % len(RANDOM_TASKS)
    return np.take_along_axis(outs, which[None, ..., None], axis=0)[0].astype(np.int32)


def stable_hash(x: np.ndarray) -> np.ndarray:
    """A process-independent 64-bit hash of each input ``x [..., 10]`` (splitmix64 finaliser
    of its base-8 code)."""
    code = np.zeros(x.shape[:-1], np.uint64)
    for i in range(x.shape[-1]):
        code = code * np.uint64(N_INPUT_SYMBOLS) + x[..., i].astype(np.uint64)
    with np.errstate(over="ignore"):
        z = code + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z


def is_test(x: np.ndarray) -> np.ndarray:
    """Boolean ``[...]``: whether each input belongs to the 25% test split."""
    return stable_hash(x) % np.uint64(TEST_SHARE_MOD) == 0


def _n_distinct(x):
    return (np.sort(x, axis=-1)[..., 1:] != np.sort(x, axis=-1)[..., :-1]).sum(-1) + 1


def sample_inputs(rng: np.random.Generator, n: int, split: str, first_index: int = 0) -> np.ndarray:
    """``n`` inputs ``[n, 10]`` from ``split`` ("train" or "test").

    Sample k (global index ``first_index + k``) is repeat-boosted when k is odd.
    Rejection sampling, vectorised: every rejected row is redrawn until accepted.
    """
    if split not in ("train", "test"):
        raise unknown_name("split", split, ("train", "test"))
    boosted = (first_index + np.arange(n)) % 2 == 1
    x = np.empty((n, N_DIGITS), np.int32)
    todo = np.arange(n)
    while todo.size:
        cand = rng.integers(0, N_INPUT_SYMBOLS, (todo.size, N_DIGITS), dtype=np.int32)
        ok = is_test(cand) == (split == "test")
        ok &= ~boosted[todo] | (_n_distinct(cand) <= MAX_DISTINCT)
        x[todo[ok]] = cand[ok]
        todo = todo[~ok]
    return x


def make_batch(task: str, seed: int, step: int, batch: int, split: str = "train") -> np.ndarray:
    """Sequences ``[batch, 20]`` (x then y) for training step ``step``; deterministic in
    (seed, step), so a resumed run sees the same data as an uninterrupted one."""
    rng = np.random.default_rng([seed, step])
    x = sample_inputs(rng, batch, split, first_index=step * batch)
    y = target(task, x, step * batch + np.arange(batch))
    return np.concatenate([x, y], axis=-1)


def test_inputs(seed: int, n: int) -> np.ndarray:
    """A fixed evaluation set of ``n`` test-split inputs ``[n, 10]``."""
    return sample_inputs(np.random.default_rng([seed, 2**31 - 1]), n, "test")
