"""Builds of the generated sample and releases of them, made once per session for every release test.

Two builds (with images, and text only) cost a few seconds each on the FnApiRunner; the releases
are plain Python and fast. Tests that change a release or a build copy it first: these are shared.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imagenet_captions.build import BuildConfig, run_build
from imagenet_captions.release.publish import ReleaseOptions, make_release

RELEASE_DATE = "2026-01-01"


@pytest.fixture(scope="session")
def release_date() -> str:
    """The datePublished of the shared releases (fixed, so a second release can be compared byte for byte)."""
    return RELEASE_DATE


@pytest.fixture(scope="session")
def image_build(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A build with images (``shards/``: tar + Parquet per shard) of the sample."""
    out = tmp_path_factory.mktemp("image_build")
    rep = run_build(
        BuildConfig(
            metadata=f"release:{sample_dir / 'imagenet_captions.json'}",
            imagenet=str(sample_dir / "train"),
            out=str(out),
        )
    )
    assert rep["accounting_problems"] == []
    return out


@pytest.fixture(scope="session")
def text_build(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A text-only build (``captions/``: Parquet only) of the same records."""
    out = tmp_path_factory.mktemp("text_build")
    rep = run_build(BuildConfig(metadata=f"release:{sample_dir / 'imagenet_captions.json'}", out=str(out)))
    assert rep["accounting_problems"] == []
    return out


@pytest.fixture(scope="session")
def text_release(text_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("text_release") / "release"
    make_release(ReleaseOptions(build=str(text_build), out=str(out), version="1.2.3", date=RELEASE_DATE))
    return out


@pytest.fixture(scope="session")
def image_release(image_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``--with-images`` release: the tars are published beside the Parquet files."""
    out = tmp_path_factory.mktemp("image_release") / "release"
    make_release(ReleaseOptions(build=str(image_build), out=str(out), with_images=True, date=RELEASE_DATE))
    return out
