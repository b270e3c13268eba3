"""notebooks/robustness.ipynb executes offline, top to bottom, in seconds."""

from __future__ import annotations


def test_robustness_notebook_runs(run_notebook) -> None:
    outputs, text = run_notebook("robustness.ipynb", timeout=120)
    assert "imagenet-v2" in text and "CLIP ViT-L/14@336px" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)
