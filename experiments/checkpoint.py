"""Checkpoints: one ``.npz`` per run holding the trainable pytree, the optimiser state,
the step reached and a fingerprint of the run's settings.

A checkpoint is only ever resumed by a run with the same fingerprint; a different
run pointed at the same file gets a ToolkitError (nothing is overwritten silently);
a file that cannot be read, or whose arrays do not match the expected pytree, is
reported as corrupt.  Writes are atomic (temporary file, then rename).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile

import jax
import numpy as np

from theory.errors import ToolkitError


def fingerprint(settings: dict) -> str:
    """A short stable hash of a JSON-able settings dict."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


def save(path: str, tree, step: int, settings: dict) -> None:
    """Write ``tree`` (any pytree of arrays), ``step`` and ``settings`` atomically to ``path``."""
    leaves = jax.tree_util.tree_leaves(tree)
    meta = {
        "step": int(step),
        "fingerprint": fingerprint(settings),
        "settings": settings,
        "n_leaves": len(leaves),
    }
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez(
        tmp,
        __meta__=np.frombuffer(json.dumps(meta, default=str).encode(), np.uint8),
        **{f"leaf{i:05d}": np.asarray(x) for i, x in enumerate(leaves)},
    )
    os.replace(tmp, path)


def read_meta(path: str) -> dict:
    """The metadata of a checkpoint (ToolkitError if it is not a readable checkpoint)."""
    try:
        with np.load(path) as data:
            return json.loads(bytes(data["__meta__"]).decode())
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ToolkitError(
            f"corrupt checkpoint {path!r}: expected an .npz written by prefix-theory experiment, "
            f"could not read it ({type(exc).__name__}: {exc})"
        ) from exc


def load(path: str, template, settings: dict):
    """``(tree, step)`` from ``path``, shaped like ``template``; the settings must match."""
    meta = read_meta(path)
    want = fingerprint(settings)
    if meta.get("fingerprint") != want:
        raise ToolkitError(
            f"checkpoint {path!r} belongs to a different run "
            f"(fingerprint {meta.get('fingerprint')}, "
            f"expected {want}; its settings: {meta.get('settings')}). Refusing to overwrite it: "
            f"pass --fresh to replace it, or use another --out directory"
        )
    leaves, treedef = jax.tree_util.tree_flatten(template)
    try:
        with np.load(path) as data:
            got = [data[f"leaf{i:05d}"] for i in range(len(leaves))]
            extra = len([k for k in data.files if k.startswith("leaf")]) - len(leaves)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ToolkitError(
            f"corrupt checkpoint {path!r}: expected {len(leaves)} arrays, could not read them "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    if extra:
        raise ToolkitError(
            f"corrupt checkpoint {path!r}: expected {len(leaves)} arrays, "
            f"found {len(leaves) + extra}"
        )
    for i, (g, t) in enumerate(zip(got, leaves, strict=False)):
        if g.shape != tuple(np.shape(t)) or g.dtype != np.asarray(t).dtype:
            raise ToolkitError(
                f"checkpoint {path!r} does not match the model: array {i} has shape {g.shape} "
                f"{g.dtype}, expected {tuple(np.shape(t))} {np.asarray(t).dtype}"
            )
    return jax.tree_util.tree_unflatten(treedef, [jax.numpy.asarray(g) for g in got]), int(
        meta["step"]
    )
