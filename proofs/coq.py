"""Finding coqc and compiling the Coq development.

The development (``proofs/theories``, listed in ``proofs/_CoqProject``) is copied into a build
directory, a fresh temporary one unless given, and compiled there file by file, dependencies
first, up to ``jobs`` files at a time; the source tree never receives build outputs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from proofs.errors import CoqNotFound, ProofsError

ROOT = Path(__file__).resolve().parent  # the source of the development
LOGICAL_NAME = "PrefixTheory"  # coqc -Q theories PrefixTheory
DEBIAN_PACKAGES = ("coq", "libcoq-coquelicot")
INSTALL_COMMAND = "apt-get install -y " + " ".join(DEBIAN_PACKAGES)
TESTED_VERSION = "8.16"
COQC_TIMEOUT_S = 600

_REQUIRE = re.compile(LOGICAL_NAME + r"\.(\w+)")


def find_coqc() -> str:
    """Path of coqc (``$COQC`` if set), or CoqNotFound naming the install command."""
    path = os.environ.get("COQC") or shutil.which("coqc")
    if not path or not Path(path).exists():
        where = (
            f"$COQC={os.environ['COQC']!r} does not exist"
            if os.environ.get("COQC")
            else ("coqc is not on PATH")
        )
        raise CoqNotFound(
            f"the Coq proof checker is missing ({where}); install Debian's Coq {TESTED_VERSION} "
            f"and Coquelicot with: {INSTALL_COMMAND}  (as root, after apt-get update; "
            "or run `make coq`)"
        )
    return path


def coq_version(coqc: str) -> str:
    out = subprocess.run(
        [coqc, "--version"], check=False, capture_output=True, text=True, timeout=60
    ).stdout
    match = re.search(r"version (\S+)", out)
    return match.group(1) if match else out.strip()


def check_libraries(coqc: str) -> None:
    """CoqNotFound unless Coquelicot (used by the derivative theorem) is installed."""
    where = subprocess.run(
        [coqc, "-where"], check=False, capture_output=True, text=True, timeout=60
    )
    lib = Path(where.stdout.strip()) / "user-contrib" / "Coquelicot"
    if where.returncode != 0 or not lib.is_dir():
        raise CoqNotFound(
            f"the Coq library Coquelicot is missing (no {lib}); install it with: "
            f"{INSTALL_COMMAND}  (as root; or run `make coq`)"
        )


def development_files(source: Path = ROOT) -> list[str]:
    """The development's files in dependency order, as listed in ``_CoqProject``."""
    project = Path(source) / "_CoqProject"
    return [
        line.strip()
        for line in project.read_text().splitlines()
        if line.strip().endswith(".v") and not line.strip().startswith("#")
    ]


def module_of(path: str) -> str:
    return Path(path).stem


def dependencies(source: Path, path: str) -> set[str]:
    """The development's modules that ``path`` requires."""
    text = (Path(source) / path).read_text()
    return {m for m in _REQUIRE.findall(text)} - {module_of(path)}


def closure(source: Path, modules) -> list[str]:
    """The development files needed to compile ``modules`` (all when None), in order."""
    files = development_files(source)
    by_module = {module_of(f): f for f in files}
    if modules is None:
        return files
    unknown = sorted(set(modules) - set(by_module))
    if unknown:
        raise ProofsError(
            f"unknown Coq module(s) {', '.join(unknown)}; expected one of: {', '.join(by_module)}"
        )
    needed, stack = set(), list(modules)
    while stack:
        m = stack.pop()
        if m not in needed:
            needed.add(m)
            stack.extend(dependencies(source, by_module[m]) & set(by_module))
    return [f for f in files if module_of(f) in needed]


@dataclass(frozen=True)
class FileResult:
    path: str  # relative to the build directory, e.g. theories/Softmax.v
    ok: bool
    seconds: float
    message: str = ""  # coqc's error output (empty when ok)
    skipped: bool = False  # not compiled because a dependency failed
    cached: bool = False  # up to date in a reused build directory: not recompiled


@dataclass
class Build:
    """A compiled copy of the development."""

    directory: Path
    coqc: str
    version: str
    files: dict = field(default_factory=dict)  # module -> FileResult
    seconds: float = 0.0  # wall time of the whole compilation

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.files.values())

    def module_ok(self, module: str) -> bool:
        result = self.files.get(module)
        return result is not None and result.ok

    def coqc_args(self) -> list[str]:
        return [self.coqc, "-q", "-Q", "theories", LOGICAL_NAME]

    def run_coqc(self, path: str) -> subprocess.CompletedProcess:
        """Compile one file of the build directory (theories/..., negative/..., or a new one)."""
        return subprocess.run(
            self.coqc_args() + [path],
            check=False,
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=COQC_TIMEOUT_S,
        )


def _copy_sources(source: Path, target: Path) -> None:
    for sub in ("theories", "negative"):
        (target / sub).mkdir(parents=True, exist_ok=True)
        for v in sorted((Path(source) / sub).glob("*.v")):
            shutil.copy2(v, target / sub / v.name)
    shutil.copy2(Path(source) / "_CoqProject", target / "_CoqProject")


def compile_development(build_dir=None, modules=None, jobs: int = 2, source: Path = ROOT) -> Build:
    """Copy the development into ``build_dir`` (a new temporary directory by default) and
    compile the files ``modules`` need (every file when None).  In a reused ``build_dir`` a
    file whose ``.vo`` is newer than its source and its dependencies is not recompiled.
    Raises CoqNotFound."""
    coqc = find_coqc()
    check_libraries(coqc)
    source = Path(source)
    directory = (
        Path(build_dir) if build_dir else Path(tempfile.mkdtemp(prefix="prefix-theory-coq-"))
    )
    directory.mkdir(parents=True, exist_ok=True)
    _copy_sources(source, directory)
    files = closure(source, modules)
    build = Build(directory, coqc, coq_version(coqc))
    deps = {module_of(f): dependencies(source, f) & {module_of(g) for g in files} for f in files}
    path_of = {module_of(f): f for f in files}

    def up_to_date(module: str) -> bool:
        vo = directory / (path_of[module][: -len(".v")] + ".vo")
        if not vo.exists():
            return False
        newest = (directory / path_of[module]).stat().st_mtime
        for dep in deps[module]:
            newest = max(newest, (directory / (path_of[dep][: -len(".v")] + ".vo")).stat().st_mtime)
        return vo.stat().st_mtime >= newest

    def compile_one(module: str) -> FileResult:
        if up_to_date(module):
            return FileResult(path_of[module], True, 0.0, cached=True)
        start = time.perf_counter()
        proc = build.run_coqc(path_of[module])
        elapsed = time.perf_counter() - start
        message = "" if proc.returncode == 0 else (proc.stdout + proc.stderr).strip()
        return FileResult(path_of[module], proc.returncode == 0, elapsed, message)

    start = time.perf_counter()
    pending, running = [module_of(f) for f in files], {}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        while pending or running:
            launched = True
            while launched:
                launched = False
                for module in list(pending):
                    if len(running) >= max(1, jobs):
                        break
                    if not deps[module] <= set(build.files):
                        continue
                    pending.remove(module)
                    launched = True
                    failed = sorted(d for d in deps[module] if not build.files[d].ok)
                    if failed:
                        build.files[module] = FileResult(
                            path_of[module],
                            False,
                            0.0,
                            f"not compiled: {', '.join(failed)} failed",
                            skipped=True,
                        )
                    else:
                        running[pool.submit(compile_one, module)] = module
            if running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    build.files[running.pop(future)] = future.result()
            elif pending:  # cannot happen: closure() includes every dependency
                raise ProofsError(f"unresolvable dependencies among {', '.join(pending)}")
    build.seconds = time.perf_counter() - start
    return build
