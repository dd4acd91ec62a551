"""Notebooks are code: each committed ``notebooks/NN_*.ipynb`` is exactly what its builder in
``notebooks/build/`` writes, so an edit made in Jupyter (and lost at the next rebuild) is caught here."""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "notebooks" / "build"
BUILDERS = sorted(BUILD.glob("[0-9][0-9]_*.py"))


def test_every_notebook_has_a_builder_and_every_builder_a_notebook():
    notebooks = {p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert notebooks == {p.stem for p in BUILDERS}
    assert len(BUILDERS) >= 10


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda p: p.stem)
def test_committed_notebook_is_what_its_builder_writes(builder, tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BUILD))
    sys.modules.pop("nbbuild", None)
    notebook = runpy.run_path(str(builder), run_name="rebuild_check")["nb"]
    written = notebook.write(tmp_path)
    committed = ROOT / "notebooks" / written.name
    assert committed.read_bytes() == written.read_bytes(), (
        f"notebooks/{written.name} differs from what {builder.relative_to(ROOT)} writes: edit the builder and run "
        f"`python {builder.relative_to(ROOT)}`, never the .ipynb by hand")
