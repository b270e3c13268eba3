"""Builds that read and write through Beam's FileSystems (as on Dataflow with gs:// paths).

A FileSystem registered for the scheme ``testfs://`` stores objects in a local folder, so the code
paths for object stores (no folders, atomic writes by rename, ranged reads) run here for real.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from imagenet_captions import fsio
from imagenet_captions.build import BuildConfig, run_build
from imagenet_captions.shards.validate import validate_build
from imagenet_captions.testing import object_store

PREFIX = object_store.PREFIX


def _digests(shard_dir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(shard_dir.glob("0*"))}


def test_fsio_roundtrip_through_a_registered_filesystem(tmp_path):
    base = PREFIX + str(tmp_path)
    with fsio.atomic_write(fsio.join(base, "a", "x.bin")) as f:
        f.write(b"hello")
    assert fsio.exists(fsio.join(base, "a", "x.bin")) and not (tmp_path / "a" / "x.bin.tmp").exists()
    assert fsio.read_bytes(fsio.join(base, "a", "x.bin")) == b"hello"
    assert fsio.listdir(fsio.join(base, "a")) == ["x.bin"]


def test_build_from_and_to_an_object_store_matches_a_local_build(sample_dir, tmp_path):
    local = run_build(
        BuildConfig(
            metadata=f"release:{sample_dir / 'imagenet_captions.json'}",
            imagenet=str(sample_dir / "train"),
            out=str(tmp_path / "local"),
        )
    )
    remote = run_build(
        BuildConfig(
            metadata=f"release:{PREFIX}{sample_dir / 'imagenet_captions.json'}",
            imagenet=f"{PREFIX}{sample_dir / 'train'}",
            out=f"{PREFIX}{tmp_path / 'remote'}",
        )
    )
    assert remote["records"] == local["records"] and remote["accounting_problems"] == []
    assert remote["images"]["outcomes"] == local["images"]["outcomes"]
    assert _digests(tmp_path / "remote" / "shards") == _digests(tmp_path / "local" / "shards")
    _, problems = validate_build(str(tmp_path / "remote"))
    assert problems == []


def test_tar_source_in_an_object_store(sample_dir, sample_tar, tmp_path):
    local = run_build(
        BuildConfig(
            metadata=f"release:{sample_dir / 'imagenet_captions.json'}",
            imagenet=str(sample_tar),
            out=str(tmp_path / "local"),
        )
    )
    run_build(
        BuildConfig(
            metadata=f"release:{sample_dir / 'imagenet_captions.json'}",
            imagenet=f"{PREFIX}{sample_tar}",
            out=str(tmp_path / "remote"),
        )
    )
    assert local["written"] == 78
    assert _digests(tmp_path / "remote" / "shards") == _digests(tmp_path / "local" / "shards")


def test_a_replaced_object_rebuilds_its_shard_and_validate_reads_the_store(sample_dir, tmp_path):
    """An object's identity is its size and update time: a new upload of an image, even of the same
    size, changes its shard's input digest. validate reads a build in the store (not "not a build")."""

    train = tmp_path / "train"
    shutil.copytree(sample_dir / "train", train)
    cfg = BuildConfig(
        metadata=f"release:{sample_dir / 'imagenet_captions.json'}",
        imagenet=f"{PREFIX}{train}",
        out=f"{PREFIX}{tmp_path / 'remote'}",
    )
    first = run_build(cfg)
    assert first["shards"]["written_now"] == first["shards"]["num_shards"]
    image = train / "n01644373" / "n01644373_10007.JPEG"
    st = image.stat()
    image.write_bytes(image.read_bytes())  # the same bytes and size, uploaded again: a new update time
    os.utime(image, (st.st_atime + 10, st.st_mtime + 10))
    second = run_build(cfg)
    assert second["shards"]["written_now"] == 1 and second["shards"]["kept"] == first["shards"]["num_shards"] - 1
    summary, problems = validate_build(f"{PREFIX}{tmp_path / 'remote'}")
    assert problems == [] and summary["samples"] == first["written"]
