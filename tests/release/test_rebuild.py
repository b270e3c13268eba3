"""A text release rebuilt into image shards from the user's own ImageNet: byte for byte the publisher's,
from the folder and the tar layout; a different copy of an image is named, never passed off as the same."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from imagenet_captions.build import BuildConfig, run_build
from imagenet_captions.cli import main
from imagenet_captions.release.publish import ReleaseOptions, make_release
from imagenet_captions.shards.validate import compare_with_release, validate_build


def _shard_digests(out: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((out / "shards").iterdir())
        if p.suffix in (".tar", ".parquet") or p.name == "sizes.json"
    }


@pytest.fixture(scope="module")
def published(image_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The text-only release of a build with images: what a user downloads (no tars)."""
    out = tmp_path_factory.mktemp("published") / "release"
    make_release(ReleaseOptions(build=str(image_build), out=str(out), version="1.0.0", date="2026-01-01"))
    assert not list(out.rglob("*.tar"))
    return out


@pytest.mark.parametrize("layout", ["folder", "tar"])
def test_rebuild_is_byte_identical_to_the_publishers_build(
    layout, published, image_build, sample_dir, sample_tar, tmp_path, capsys
):
    imagenet = sample_dir / "train" if layout == "folder" else sample_tar
    out = tmp_path / "rebuilt"
    rep = run_build(BuildConfig(metadata=f"text-release:{published}", imagenet=str(imagenet), out=str(out)))
    publisher = json.loads((image_build / "report.json").read_text())
    assert rep["accounting_problems"] == [] and rep["written"] == publisher["written"]
    assert rep["records"]["input"] == publisher["written"] and rep["text"] == {}
    assert _shard_digests(out) == _shard_digests(image_build)
    manifest = json.loads((published / "manifest.json").read_text())
    equal, problems = compare_with_release(str(out), manifest)
    assert problems == [] and equal == manifest["build"]["num_shards"]
    assert validate_build(str(out))[1] == []
    assert main(["validate", str(out), "--against", str(published / "manifest.json")]) == 0
    assert f"{equal} of {equal} shards equal to the publisher's" in capsys.readouterr().out


def test_an_image_altered_by_one_byte_is_named_and_not_written(published, image_build, sample_dir, tmp_path, capsys):
    train = tmp_path / "train"
    shutil.copytree(sample_dir / "train", train)
    rows = {}
    for p in sorted((published / "captions").glob("*.parquet")):
        import pyarrow.parquet as pq

        for r in pq.read_table(p, columns=["key", "wnid", "image_action"]).to_pylist():
            rows[r["key"]] = r
    key = next(k for k, r in sorted(rows.items()) if r["image_action"] == "kept")
    image = train / rows[key]["wnid"] / f"{key}.JPEG"
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of the entropy-coded data: still a whole JPEG
    image.write_bytes(bytes(data))
    out = tmp_path / "rebuilt"
    rep = run_build(BuildConfig(metadata=f"text-release:{published}", imagenet=str(train), out=str(out)))
    assert rep["records"]["outcomes"]["image_differs"] == 1 and rep["accounting_problems"] == []
    (example,) = rep["examples"]["records"]["image_differs"]
    assert example["key"] == key and "publisher's" in example["detail"]
    code = main(["validate", str(out), "--against", str(published)])
    text = capsys.readouterr().out
    assert code == 1 and "is not the publisher's" in text
    differing = [line for line in text.splitlines() if "is not the publisher's" in line]
    assert len(differing) == 1  # only the shard holding that image


def test_rebuild_refuses_options_that_would_change_the_bytes(published, sample_dir, tmp_path, capsys):
    argv = ["build", "--metadata", f"text-release:{published}", "--imagenet", str(sample_dir / "train")]
    assert main([*argv, "--out", str(tmp_path / "a"), "--resize", "64"]) == 2
    assert main([*argv, "--out", str(tmp_path / "b"), "--num-shards", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "publisher's image options" in err[0] and "--num-shards" in err[1]
    assert main(["build", "--metadata", f"text-release:{tmp_path}", "--out", str(tmp_path / "c")]) == 2
