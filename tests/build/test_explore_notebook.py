"""notebooks/explore_build.ipynb executes offline, top to bottom (it builds the sample itself)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "explore_build.ipynb"


def test_explore_notebook_runs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("BUILD_DIR", raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs)
    assert "accounting problems: none" in text and "records input 122" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2
