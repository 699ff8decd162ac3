"""A sweep's results file (``verify --results PATH``): JSON Lines, written as the sweep runs.

The first line describes the sweep (``{"prefix_theory_results": 1, "config": {...}}``: the
number of trials and the trial shape, which every row must share); every other line is one
result (:meth:`theory.verify.Result.to_json` plus ``"model"``), keyed by
``(model, theorem, method, seed)``; the model of a random trial is its architecture.

Each finished (architecture, seed) unit is appended as one write, flushed and synced, so an
interrupted sweep leaves whole units behind (at worst a partial last line, which is dropped
when the file is read again).  Restarted with the same file, the sweep runs only the units
whose rows are missing.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import fields
from pathlib import Path

from theory.errors import ToolkitError
from theory.verify import Result, result_key

FORMAT = 1
FIELDS = [f.name for f in fields(Result)]


def result_from_json(row: dict) -> Result:
    """The Result a row of the file holds (non-finite residuals are stored as strings, an effect
    that was not measured as null or, in files older than the effect columns, not at all)."""
    values = {name: row[name] for name in FIELDS if name in row}
    values["max_residual"] = float(values["max_residual"])
    for name in ("prefix_mass", "displacement"):
        values[name] = math.nan if values.get(name) is None else float(values[name])
    return Result(**values)


def row_of(result: Result) -> dict:
    row = result.to_json()
    if not math.isfinite(result.max_residual):
        row["max_residual"] = str(result.max_residual)
    return {"model": result.architecture, **row}


class ResultsFile:
    """The results of one sweep configuration (``config``: a JSON-able dict) at ``path``."""

    def __init__(self, path, config: dict):
        self.path = Path(path)
        self.config = json.loads(json.dumps(config))  # as it reads back
        self.rows: dict[tuple, Result] = {}
        self._valid_bytes = 0  # length of the file's whole lines
        if self.path.is_dir():
            raise ToolkitError(f"--results: expected a file path, {self.path} is a directory")
        if self.path.exists() and self.path.stat().st_size:
            self._read()

    def _read(self) -> None:
        data = self.path.read_bytes()
        lines = data.split(b"\n")[:-1]  # whole lines (a partial last one is dropped)
        if not lines and data.startswith(b'{"prefix_theory_results"'):
            return  # the first write was interrupted: start afresh
        try:
            header = json.loads(lines[0]) if lines else None
        except json.JSONDecodeError:
            header = None
        if not isinstance(header, dict) or header.get("prefix_theory_results") != FORMAT:
            raise ToolkitError(
                f"--results {self.path}: expected a prefix-theory results file (JSON Lines "
                "starting with a prefix_theory_results header); got another file, which is "
                "left alone: choose a new path"
            )
        if header.get("config") != self.config:
            raise ToolkitError(
                f"--results {self.path}: the file holds a sweep with {header.get('config')}, "
                f"this run has {self.config}; rows of different sweeps are not comparable: "
                "choose a new path or the same options"
            )
        offset = len(lines[0]) + 1
        for number, line in enumerate(lines[1:], start=2):
            try:
                result = result_from_json(json.loads(line))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                raise ToolkitError(
                    f"--results {self.path}: line {number} is not a result row; the file is "
                    "damaged (only a partial last line is expected after an interruption)"
                ) from None
            self.rows[result_key(result)] = result
            offset += len(line) + 1
        self._valid_bytes = offset

    def done(self) -> frozenset:
        """The keys of the results already in the file."""
        return frozenset(self.rows)

    def append(self, results: list[Result]) -> None:
        """Add one unit's results in one synced write (the header first, for a new file)."""
        text = ""
        if self._valid_bytes == 0:
            text = json.dumps({"prefix_theory_results": FORMAT, "config": self.config}) + "\n"
        text += "".join(json.dumps(row_of(r)) + "\n" for r in results)
        mode = "r+b" if self.path.exists() else "wb"
        with open(self.path, mode) as fh:
            fh.seek(self._valid_bytes)
            fh.truncate()  # a partial line left by an interruption
            fh.write(text.encode())
            fh.flush()
            os.fsync(fh.fileno())
        self._valid_bytes += len(text.encode())
        for r in results:
            self.rows[result_key(r)] = r
