"""What a source offers decides the build once: a text release's publisher (shard count, image options,
class list) and its published records, read beside the images their publisher read; the plan's named
cases (``cleans_text``, ``dedupes_owners``) that the graph and the units read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from imagenet_captions.build import BuildConfig, make_plan, run_build
from imagenet_captions.cli import main
from imagenet_captions.images import ImageOptions
from imagenet_captions.outcomes import Drop
from imagenet_captions.records import ExpectedImage, Published
from imagenet_captions.sources import open_source
from imagenet_captions.text import TextOptions


@pytest.fixture(scope="module")
def release(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A text release of a resized build of the sample, in three shards."""
    from imagenet_captions.release.publish import ReleaseOptions, make_release

    root = tmp_path_factory.mktemp("publisher")
    run_build(
        BuildConfig(
            metadata=f"release:{sample_dir / 'imagenet_captions.json'}",
            imagenet=str(sample_dir / "train"),
            out=str(root / "build"),
            num_shards=3,
            image=ImageOptions(resize=24),
        )
    )
    make_release(ReleaseOptions(build=str(root / "build"), out=str(root / "release"), date="2026-01-01"))
    return root / "release"


def test_a_text_release_fixes_the_shard_count_and_image_options_and_cleans_no_text(
    release, sample_dir, tmp_path
):
    config = BuildConfig(
        metadata=f"text-release:{release}",
        imagenet=str(sample_dir / "train"),
        out=str(tmp_path / "o"),
        text=TextOptions(owner_duplicates="once"),
    )
    plan = make_plan(config)
    assert plan.publisher is not None and plan.publisher == plan.source.publisher()
    assert plan.num_shards == plan.publisher.num_shards == 3
    assert plan.image == plan.publisher.image == ImageOptions(resize=24)
    assert plan.publisher.classes is None  # ILSVRC-2012's list is not recorded
    assert not plan.cleans_text and not plan.dedupes_owners  # --owner-duplicates once has nothing to do


@pytest.mark.parametrize(("owner_duplicates", "dedupes"), [("keep", False), ("once", True), ("drop", True)])
def test_a_source_of_raw_records_is_cleaned_and_deduped_as_asked(
    sample_dir, tmp_path, owner_duplicates, dedupes
):
    config = BuildConfig(
        metadata=f"release:{sample_dir / 'imagenet_captions.json'}",
        out=str(tmp_path / "o"),
        text=TextOptions(owner_duplicates=owner_duplicates),
    )
    plan = make_plan(config)
    assert plan.publisher is None and plan.source.publisher() is None
    assert plan.cleans_text and plan.dedupes_owners is dedupes


def test_a_published_record_holds_the_schemas_text_and_its_image_travels_beside_it(release):
    source = open_source(f"text-release:{release}")
    published = [p for part in source.parts(1) for p in source.read(part)]
    assert published and not any(isinstance(p, Drop) for p in published)
    rows = {
        r["key"]: r
        for path in sorted((release / "captions").glob("*.parquet"))
        for r in pq.read_table(path).to_pylist()
    }
    for p in published:
        assert isinstance(p, Published)
        row = rows[p.record["key"]]
        assert p.image == ExpectedImage(row["image_sha256"], row["image_size"]) and p.image.sha256
        assert "expect" not in p.record and "image_sha256" not in p.record and "jpg_bytes" not in p.record
        assert p.record["caption"] == row["caption"] and p.record["label"] == row["label"]


@pytest.mark.parametrize(
    "damage",
    [
        lambda options: options["image"].update(sharpen=1),  # an option this tool does not have
        lambda options: options.pop("image"),
        lambda options: options.update(classes={"source": "file"}),  # a class list without its wnids
    ],
    ids=["unknown-image-option", "no-image-options", "classes-without-wnids"],
)
def test_a_manifest_without_a_builds_options_is_one_line(release, sample_dir, tmp_path, capsys, damage):
    """Before, the plan read the options itself: a TypeError or KeyError traceback halfway."""
    copy = tmp_path / "release"
    shutil.copytree(release, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    damage(manifest["build"]["options"])
    (copy / "manifest.json").write_text(json.dumps(manifest))
    argv = ["build", "--metadata", f"text-release:{copy}", "--imagenet", str(sample_dir / "train")]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "manifest.json does not hold a build's options" in line
    assert not (tmp_path / "o" / "shards").exists()
