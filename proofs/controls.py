"""Negative controls: false variants of the theorems whose proofs coqc must reject.

Each control file first proves the TRUE twin with a proof script, then applies the same script
to the false claim; the control passes when coqc accepts the twin and fails with a tactic error
inside the false claim's proof (not a syntax or import error).  The development also proves
each false claim's negation (``refuted_by``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from proofs.coq import Build


@dataclass(frozen=True)
class NegativeControl:
    name: str
    file: str  # relative to proofs/
    twin: str  # the true theorem proved first with the same script
    false_theorem: str
    claim: str
    refuted_by: tuple  # (module, theorem) proving the claim false


CONTROLS = (
    NegativeControl(
        "prefix_outside_denominator",
        "negative/PrefixOutsideDenominator.v",
        "relative_attention_twin",
        "relative_attention_outside_denominator",
        "relative attention with the virtual positions left out of the softmax denominator",
        ("RelativeAttention", "prefix_outside_denominator_refuted"),
    ),
    NegativeControl(
        "differential_attention",
        "negative/DifferentialAttention.v",
        "relative_attention_ratio_twin",
        "differential_relative_attention",
        "relative attention for the difference of two softmaxes (differential attention)",
        ("Differential", "differential_not_relative"),
    ),
    NegativeControl(
        "hard_prompt_V_plus_1",
        "negative/HardPromptVPlus1.v",
        "hard_token_V_behaviours",
        "hard_token_V_plus_1_behaviours",
        "one hard token reaches V + 1 distinct behaviours",
        ("Capacity", "hard_token_not_V_plus_1"),
    ),
)

# coqc messages that mean the file is broken rather than the proof rejected
_SETUP_ERRORS = (
    "Syntax error",
    "Unable to locate library",
    "Cannot find a physical path",
    "was not found in the current environment",
    "makes inconsistent assumptions",
    "Cannot find library",
)


@dataclass(frozen=True)
class ControlResult:
    control: NegativeControl
    returncode: int
    error_line: int | None  # 1-based line of coqc's first error
    message: str
    false_proof_lines: tuple  # (first, last) 1-based lines of the false claim's statement and proof
    seconds: float

    @property
    def rejected(self) -> bool:
        return self.returncode != 0

    @property
    def in_false_proof(self) -> bool:
        """coqc got past the true twin and failed inside the false claim's proof."""
        first, last = self.false_proof_lines
        return self.error_line is not None and first <= self.error_line <= last

    @property
    def tactic_failure(self) -> bool:
        return self.rejected and not any(s in self.message for s in _SETUP_ERRORS)

    @property
    def ok(self) -> bool:
        """The rejection is meaningful: a proof failure where the claim is false."""
        return self.rejected and self.in_false_proof and self.tactic_failure


def _proof_lines(text: str, name: str) -> tuple[int, int]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^\s*Theorem\s+{name}\b", line))
    end = next(i for i in range(start, len(lines)) if re.match(r"^\s*Qed\.", lines[i]))
    return start + 1, end + 1


def run_control(build: Build, control: NegativeControl) -> ControlResult:
    """Compile one control in the build directory (the development must be compiled)."""
    path = Path(build.directory) / control.file
    start = time.perf_counter()
    proc = build.run_coqc(control.file)
    seconds = time.perf_counter() - start
    message = (proc.stdout + proc.stderr).strip()
    match = re.search(r'File "[^"]*", line (\d+)', message)
    return ControlResult(
        control,
        proc.returncode,
        int(match.group(1)) if match else None,
        message,
        _proof_lines(path.read_text(), control.false_theorem),
        seconds,
    )


def run_negative_controls(build: Build) -> list[ControlResult]:
    return [run_control(build, c) for c in CONTROLS]
