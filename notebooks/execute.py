"""Execute the notebooks: the jupytext percent scripts (``NN_name.py``) are the source;
the ``.ipynb`` files beside them are generated, executed copies (outputs visible without running).

    python notebooks/execute.py            # execute every notebook, write the .ipynb files
    python notebooks/execute.py 01         # only notebooks whose name starts with 01
    PREFIX_THEORY_QUICK=1 python notebooks/execute.py --no-write   # what the tests do

Each notebook reads ``PREFIX_THEORY_QUICK`` (default "1": quick mode) to pick small settings.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def sources(prefixes=()) -> list[Path]:
    """The notebook sources, ``NN_*.py``, in order (optionally those starting with a prefix)."""
    found = sorted(p for p in HERE.glob("[0-9][0-9]_*.py"))
    if prefixes:
        found = [p for p in found if any(p.name.startswith(x) for x in prefixes)]
    return found


def execute(source: Path, write: bool = True, timeout: int = 600) -> tuple[object, float]:
    """Run one notebook top to bottom in a fresh kernel (cwd = repository root).

    Returns (the executed notebook, seconds).
    """
    import jupytext
    from nbclient import NotebookClient

    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    start = time.perf_counter()
    NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(HERE.parent)}},
    ).execute()
    elapsed = time.perf_counter() - start
    if write:
        import nbformat

        nbformat.write(notebook, source.with_suffix(".ipynb"))
    return notebook, elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "prefixes", nargs="*", help="run only notebooks whose file name starts with these"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="execute without writing the .ipynb files"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("PREFIX_THEORY_QUICK", "1")
    for source in sources(args.prefixes):
        _, elapsed = execute(source, write=not args.no_write)
        print(f"{source.name}: {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
