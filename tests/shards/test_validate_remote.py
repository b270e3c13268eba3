"""``validate`` on a build in an object store, and the checks a crash or an empty shard needs.

The ``testfs://`` FileSystem of ``imagenet_captions.testing.object_store`` serves a local folder,
so validate's reads go through Beam as they would for ``gs://``. Before validate read through fsio, every such path
was "not a build output".
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from imagenet_captions import fsio
from imagenet_captions.build import BuildConfig, run_build
from imagenet_captions.cli import main
from imagenet_captions.shards.validate import validate_build
from imagenet_captions.testing import object_store

PREFIX = object_store.PREFIX


@pytest.fixture(scope="module")
def built(sample_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("validate_remote")
    run_build(
        BuildConfig(
            metadata=f"release:{sample_dir / 'imagenet_captions.json'}",
            imagenet=str(sample_dir / "train"),
            out=str(out),
            num_shards=6,
        )
    )
    return out


@pytest.fixture(scope="module")
def built_text_only(sample_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("validate_remote_text")
    run_build(BuildConfig(metadata=f"release:{sample_dir / 'imagenet_captions.json'}", out=str(out), num_shards=3))
    return out


@pytest.fixture
def copy(built: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "b"
    shutil.copytree(built, dst)
    return dst


def remote(path: Path) -> str:
    return PREFIX + str(path)


def test_a_build_in_an_object_store_validates_as_the_local_one(built: Path, capsys) -> None:
    local_summary, local_problems = validate_build(str(built), decode=True)
    summary, problems = validate_build(remote(built), decode=True)
    assert local_problems == [] and problems == []
    assert (summary["shards"], summary["samples"], summary["text_only"]) == (6, 78, False)
    assert summary["dir"] == fsio.join(remote(built), "shards")
    assert main(["validate", remote(built)]) == 0
    assert "OK: 6 shards, 78 samples" in capsys.readouterr().out


def test_a_text_only_build_in_an_object_store(built_text_only: Path) -> None:
    summary, problems = validate_build(remote(built_text_only))
    assert problems == [] and summary["text_only"] and summary["shards"] == 3


def test_problems_are_found_through_the_object_store(copy: Path) -> None:
    tar = copy / "shards" / "00001.tar"
    tar.write_bytes(tar.read_bytes()[:3000])
    _, problems = validate_build(remote(copy))
    assert any("00001.tar: unreadable or incomplete" in p for p in problems)
    assert any("sizes.json" in p for p in problems) and any("report.json says" in p for p in problems)


def test_a_missing_object_store_build_is_one_usage_line(tmp_path: Path, capsys) -> None:
    assert main(["validate", remote(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a build output" in err[0] and str(tmp_path / "nothing") in err[0]


@pytest.mark.parametrize("where", ["local", "remote"])
def test_a_planned_shard_that_is_missing_is_a_problem(copy: Path, where: str) -> None:
    """The manifest plans one more shard than is on disk, and every other file agrees: only the gap
    in the numbering is wrong (a loader's ``{00000..00006}.tar`` would fail on it)."""
    manifest_path = copy / "shards" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["num_shards"] = 7
    manifest_path.write_text(json.dumps(manifest))
    _, problems = validate_build(str(copy) if where == "local" else remote(copy))
    assert problems == [
        "shard 00006.tar is planned in manifest.json (num_shards 7) but missing",
        "shard 00006.parquet is planned in manifest.json (num_shards 7) but missing",
    ]


def test_a_removed_shard_is_named_as_missing(copy: Path) -> None:
    (copy / "shards" / "00002.tar").unlink()
    (copy / "shards" / "00002.parquet").unlink()
    _, problems = validate_build(remote(copy))
    assert "shard 00002.tar is planned in manifest.json (num_shards 6) but missing" in problems
    assert "shard 00002.parquet is planned in manifest.json (num_shards 6) but missing" in problems


def test_a_missing_parquet_of_a_text_only_build(built_text_only: Path, tmp_path: Path) -> None:
    dst = tmp_path / "t"
    shutil.copytree(built_text_only, dst)
    (dst / "captions" / "00001.parquet").unlink()
    _, problems = validate_build(str(dst))
    assert "shard 00001.parquet is planned in manifest.json (num_shards 3) but missing" in problems
    assert not any("00001.tar" in p for p in problems)  # a text-only build has no tars


def test_a_manifest_without_a_shard_count_is_a_problem(copy: Path) -> None:
    manifest_path = copy / "shards" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["num_shards"]
    manifest_path.write_text(json.dumps(manifest))
    _, problems = validate_build(str(copy))
    assert problems == ["manifest.json: num_shards is None, not a shard count"]


@pytest.mark.parametrize("where", ["local", "remote"])
def test_leftover_temporary_files_anywhere_are_problems(copy: Path, where: str) -> None:
    shards = copy / "shards"
    unique = os.path.basename(fsio.temp_path(str(shards / "00004.tar")))
    (shards / unique).write_bytes(b"half a shard")
    (shards / "nested").mkdir()
    (shards / "nested" / "sizes.json.77-0a0b0c0d.tmp").write_bytes(b"{")
    _, problems = validate_build(str(copy) if where == "local" else remote(copy))
    assert problems == [
        f"unfinished file left behind: {unique}",
        "unfinished file left behind: nested/sizes.json.77-0a0b0c0d.tmp",
    ]
