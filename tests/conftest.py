"""Fixtures shared across the test tree: the generated sample, written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagenet_captions.sample import SampleSpec, write_ilsvrc_tar, write_sample


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ILSVRC-shaped folder and release JSON with every oddity (8 images a class, 10 classes)."""
    root = tmp_path_factory.mktemp("sample")
    write_sample(root, SampleSpec(per_class=8))
    return root


@pytest.fixture(scope="session")
def sample_tar(sample_dir: Path) -> Path:
    """The same images packed as ILSVRC2012_img_train.tar is: a tar of per-class tars."""
    tar = sample_dir / "ILSVRC2012_img_train.tar"
    write_ilsvrc_tar(sample_dir / "train", tar)
    return tar


@pytest.fixture
def run_notebook(tmp_path: Path):
    """Execute ``notebooks/<name>`` top to bottom in ``tmp_path``; returns its outputs and their text."""
    import nbformat
    from nbclient import NotebookClient

    def run(name: str, timeout: int) -> tuple[list[dict], str]:
        nb = nbformat.read(Path(__file__).resolve().parents[1] / "notebooks" / name, as_version=4)
        NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
        return outputs, "".join(o.get("text", "") for o in outputs)

    return run
