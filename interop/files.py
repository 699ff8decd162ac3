"""Reading and writing the files of Hugging Face checkpoints and PEFT adapters, with numpy only.

``.safetensors`` is a small format: an 8-byte little-endian header length, a JSON header
``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`` and the
raw little-endian bytes.  It is read here directly (not through the ``safetensors`` package)
so that bfloat16 checkpoints, which numpy cannot hold, load as float32 (exactly: a bfloat16
is the top half of a float32), and so that every problem is reported as a ToolkitError that
names the file and what was expected.

Sharded checkpoints (``model.safetensors.index.json`` + shards) are read through the index.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

from theory.errors import ToolkitError

# safetensors dtype codes -> numpy dtypes ("BF16" is widened to float32 on reading)
DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": np.uint16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}
CODES = {np.dtype(v): k for k, v in DTYPES.items() if k != "BF16"}
MAX_HEADER = 100_000_000  # the safetensors library's own limit


def read_json(path: Path, what: str) -> dict:
    """A JSON object from ``path`` (ToolkitError naming the file and ``what`` it should be)."""
    path = Path(path)
    if not path.is_file():
        raise ToolkitError(f"{what}: expected the file {path}, not found")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ToolkitError(f"{what} {path}: expected JSON, could not parse it ({exc})") from None
    if not isinstance(data, dict):
        raise ToolkitError(f"{what} {path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """All tensors of one ``.safetensors`` file as numpy arrays (BF16 widened to float32)."""
    path = Path(path)
    if not path.is_file():
        raise ToolkitError(f"weights file not found: expected {path}")
    size = path.stat().st_size
    # memory-mapped: a large checkpoint is not read twice (the arrays are views until used)
    raw = np.memmap(path, np.uint8, mode="r") if size else np.zeros(0, np.uint8)

    def corrupt(why: str) -> ToolkitError:
        return ToolkitError(
            f"weights file {path} could not be read as safetensors (expected an 8-byte header "
            f"length, a JSON header and the tensor data): {why}"
        )

    if size < 8:
        raise corrupt(f"got {size} bytes")
    (n,) = struct.unpack("<Q", raw[:8].tobytes())
    if n > min(MAX_HEADER, size - 8):
        raise corrupt(f"the header length {n} exceeds the file size {size}")
    try:
        header = json.loads(raw[8 : 8 + n].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise corrupt(f"the header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise corrupt("the header is not a JSON object")
    data = raw[8 + n :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            code, (begin, end) = info["dtype"], (int(x) for x in info["data_offsets"])
            shape = tuple(int(x) for x in info["shape"])
            count = int(np.prod(shape, dtype=np.int64))
        except (KeyError, TypeError, ValueError):
            raise corrupt(f"tensor {name!r} has no valid dtype/shape/data_offsets") from None
        if code not in DTYPES:
            raise corrupt(f"tensor {name!r} has dtype {code!r}; expected one of {sorted(DTYPES)}")
        dtype = np.dtype(DTYPES[code]).newbyteorder("<")
        if not 0 <= begin <= end <= len(data) or end - begin != count * dtype.itemsize:
            raise corrupt(
                f"tensor {name!r} ({code} {list(shape)}) needs {count * dtype.itemsize} bytes, "
                f"its offsets {begin}..{end} give {end - begin} of the {len(data)} data bytes"
            )
        array = data[begin:end].view(dtype).reshape(shape)
        if code == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = array.astype(array.dtype.newbyteorder("="), copy=False)
    return tensors


def write_safetensors(path: Path, tensors: dict, metadata: dict | None = None) -> None:
    """Write ``{name: array}`` as a ``.safetensors``
    file (atomically: temporary file, then rename)."""
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        if array.dtype not in CODES:
            raise ToolkitError(
                f"tensor {name!r}: dtype {array.dtype} cannot be written; expected one of "
                + ", ".join(sorted(str(d) for d in CODES))
            )
        blob = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {
            "dtype": CODES[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        chunks.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as the library writes it
    write_bytes(Path(path), struct.pack("<Q", len(text)) + text + b"".join(chunks))


def write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it private; a checkpoint is shared like any file
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_checkpoint_tensors(folder: Path) -> tuple[dict[str, np.ndarray], list[Path]]:
    """The tensors of a ``save_pretrained`` folder: ``model.safetensors`` or the sharded index."""
    folder = Path(folder)
    single = folder / "model.safetensors"
    index = folder / "model.safetensors.index.json"
    if single.is_file():
        return read_safetensors(single), [single]
    if index.is_file():
        weight_map = read_json(index, "sharded checkpoint index").get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ToolkitError(f"{index}: expected a non-empty 'weight_map' {{tensor: shard file}}")
        tensors, files = {}, []
        for shard in sorted(set(weight_map.values())):
            files.append(folder / shard)
            tensors.update(read_safetensors(folder / shard))
        missing = sorted(set(weight_map) - set(tensors))
        if missing:
            raise ToolkitError(f"{index}: tensor {missing[0]!r} is in the index but in no shard")
        return tensors, files
    if (folder / "pytorch_model.bin").is_file():
        raise ToolkitError(
            f"{folder}: only pytorch_model.bin found; expected model.safetensors (the toolkit "
            "reads safetensors only, never torch pickles: re-save with save_pretrained)"
        )
    raise ToolkitError(
        f"{folder}: expected model.safetensors (or model.safetensors.index.json with its shards), "
        "not found"
    )
