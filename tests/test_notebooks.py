"""Every notebook runs top to bottom (quick mode) in a fresh kernel, and its committed
executed copy is in sync with its jupytext source (same code cells, outputs present)."""

import nbformat
import pytest

from notebooks.execute import execute, sources

NOTEBOOKS = sources()


@pytest.mark.parametrize("source", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_committed_copy_matches(source, monkeypatch):
    monkeypatch.setenv("PREFIX_THEORY_QUICK", "1")
    notebook, _ = execute(source, write=False)
    errors = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors
    committed = source.with_suffix(".ipynb")
    assert committed.exists(), f"{committed.name} missing: run python notebooks/execute.py"
    saved = nbformat.read(committed, as_version=4)

    def code(nb):
        return [c.source for c in nb.cells if c.cell_type == "code"]

    assert code(saved) == code(notebook), (
        f"{committed.name} is stale: run python notebooks/execute.py"
    )

    def has_output(nb):
        return [bool(c.get("outputs")) for c in nb.cells if c.cell_type == "code"]

    assert has_output(saved) == has_output(notebook), (
        f"{committed.name} lacks outputs: run notebooks/execute.py"
    )
    assert (
        any("image/png" in o.get("data", {}) for c in saved.cells for o in c.get("outputs", []))
        or "no figure" in source.read_text()
    ), f"{committed.name} shows no figure"
