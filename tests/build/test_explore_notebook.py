"""notebooks/explore_build.ipynb executes offline, top to bottom (it builds the sample itself)."""

from __future__ import annotations


def test_explore_notebook_runs(run_notebook, monkeypatch) -> None:
    monkeypatch.delenv("BUILD_DIR", raising=False)
    outputs, text = run_notebook("explore_build.ipynb", timeout=180)
    assert "accounting problems: none" in text and "records input 122" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2
