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
