"""The repository is clean under ``ruff check`` and ``ruff format --check`` (pyproject.toml)."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ruff_problems(root: Path) -> list[str]:
    """Each unclean command's name and output, for ``ruff check .`` and ``ruff format --check .``
    run in ``root`` (nothing excluded); an empty list when both are clean."""
    problems = []
    for command in (["check", "."], ["format", "--check", "."]):
        args = [sys.executable, "-m", "ruff", *command]
        proc = subprocess.run(args, cwd=root, capture_output=True, text=True)
        assert "No module named ruff" not in proc.stderr, (
            'ruff is not installed: pip install -e ".[dev]"'
        )
        if proc.returncode != 0:
            problems.append(f"$ ruff {' '.join(command)}\n{proc.stdout}{proc.stderr}")
    return problems


def test_repository_is_clean_under_ruff():
    problems = ruff_problems(ROOT)
    assert not problems, "\n".join(problems)


def _project_with(tmp_path: Path, files: dict[str, str]) -> Path:
    """A scratch project with the repository's ruff settings and the given files."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


CLEAN = "import os\n\nprint(os.sep)\n"
# An unsorted import block (I001), a line over 100 characters (E501) and a call ruff would
# reformat (missing spaces): both commands must complain.
UNCLEAN = "import sys\nimport os\n\nprint(os.sep,sys.argv,  '" + "x" * 100 + "')\n"


def test_negative_control_unclean_file_is_reported(tmp_path):
    project = _project_with(tmp_path, {"pkg/good.py": CLEAN, "pkg/bad.py": UNCLEAN})
    problems = ruff_problems(project)
    assert len(problems) == 2, problems
    check, fmt = problems
    assert "I001" in check and "E501" in check and "pkg/bad.py" in check
    assert "pkg/bad.py" in fmt and "good.py" not in fmt
    (tmp_path / "clean").mkdir()
    assert ruff_problems(_project_with(tmp_path / "clean", {"pkg/good.py": CLEAN})) == []
