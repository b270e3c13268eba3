"""``imagenet-captions release``: layout, manifest, byte-identical copies, refusals, the dataset card."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from imagenet_captions import __version__
from imagenet_captions import manifest as mf
from imagenet_captions.cli import main
from imagenet_captions.errors import UsageError
from imagenet_captions.release import card, publish
from imagenet_captions.release.publish import ReleaseOptions, make_release


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _published(release: Path) -> list[str]:
    return sorted(p.relative_to(release).as_posix() for p in release.rglob("*") if p.is_file())


def _front_matter(readme: Path) -> dict:
    text = readme.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_text_release_layout_and_manifest(text_release, text_build):
    m = mf.read_manifest(str(text_release))
    build_manifest = json.loads((text_build / "captions" / "manifest.json").read_text())
    report = json.loads((text_build / "report.json").read_text())
    assert (
        m["format"],
        m["format_version"],
        m["name"],
        m["version"],
        m["tool_version"],
        m["with_images"],
    ) == (
        "imagenet-captions-release",
        1,
        "imagenet-captions",
        "1.2.3",
        __version__,
        False,
    )
    # Every published file but the manifest is listed (sorted, POSIX paths), and each is as listed.
    assert [f["path"] for f in m["files"]] == [p for p in _published(text_release) if p != "manifest.json"]
    assert mf.verify_files(str(text_release), m["files"]) == []
    stems = sorted(build_manifest["shards"])
    assert [f["path"] for f in m["files"]] == [
        "README.md",
        *[f"captions/{s}.parquet" for s in stems],
        "croissant.json",
    ]
    assert m["build"] == {
        "num_shards": build_manifest["num_shards"],
        "options": build_manifest["options"],
        "counts": {"records": report["records"], "written": report["written"]},
        "metadata": "release:imagenet_captions.json",  # the name, never the publisher's path
    }
    assert report["inputs"]["metadata"].endswith("/imagenet_captions.json")
    assert sorted(m["shards"]) == stems
    for stem, shard in m["shards"].items():
        assert shard["tar"] is None  # a text-only build has no image shards
        assert shard["samples"] == build_manifest["shards"][stem]["written"]
        assert shard["parquet"]["sha256"] == _sha(text_build / "captions" / f"{stem}.parquet")
    assert sum(s["samples"] for s in m["shards"].values()) == report["written"]
    assert not (text_release / mf.INCOMPLETE_MARKER).exists() and not (text_release / "shards").exists()


def test_parquet_files_are_byte_copies_and_tars_are_hashed_when_not_published(image_build, tmp_path):
    out = tmp_path / "rel"
    m = make_release(ReleaseOptions(build=str(image_build), out=str(out)))
    assert not (out / "shards").exists() and not any(f["path"].startswith("shards/") for f in m["files"])
    for stem, shard in m["shards"].items():
        assert (out / "captions" / f"{stem}.parquet").read_bytes() == (
            image_build / "shards" / f"{stem}.parquet"
        ).read_bytes()
        tar = image_build / "shards" / f"{stem}.tar"
        # A user's rebuild is proven equal to the publisher's by these, without the tars being shared.
        assert shard["tar"] == {
            "name": f"{stem}.tar",
            "sha256": _sha(tar),
            "size": tar.stat().st_size,
            "published": False,
        }
    sizes = json.loads((image_build / "shards" / "sizes.json").read_text())
    assert {f"{s}.tar": v["samples"] for s, v in m["shards"].items()} == sizes


def test_with_images_publishes_the_tars_and_warns(image_build, image_release, tmp_path, capsys):
    m = mf.read_manifest(str(image_release))
    assert m["with_images"] is True
    assert mf.verify_files(str(image_release), m["files"]) == []
    for stem, shard in m["shards"].items():
        assert shard["tar"]["published"] is True
        assert (image_release / "shards" / f"{stem}.tar").read_bytes() == (
            image_build / "shards" / f"{stem}.tar"
        ).read_bytes()
    assert "shards/sizes.json" in {f["path"] for f in m["files"]}
    assert "gated or private mirror" in (image_release / "README.md").read_text()

    assert main(["release", str(image_build), "--out", str(tmp_path / "r"), "--with-images"]) == 0
    err = capsys.readouterr().err
    assert "WARNING" in err and "ImageNet" in err and "gated or private mirror" in err


def test_same_build_same_release_bytes(text_build, text_release, release_date, tmp_path):
    again = tmp_path / "again"
    make_release(ReleaseOptions(build=str(text_build), out=str(again), version="1.2.3", date=release_date))
    assert {p: (again / p).read_bytes() for p in _published(again)} == {
        p: (text_release / p).read_bytes() for p in _published(text_release)
    }


def test_rerelease_overwrites_only_a_release_of_the_same_name(image_build, text_build, tmp_path):
    out = tmp_path / "rel"
    make_release(ReleaseOptions(build=str(image_build), out=str(out), with_images=True))
    # The same name again, now text only: the tars and sizes.json of the earlier release are gone.
    m = make_release(ReleaseOptions(build=str(text_build), out=str(out), version="1.0.1"))
    assert not (out / "shards").exists()
    assert [f["path"] for f in m["files"]] == [p for p in _published(out) if p != "manifest.json"]

    with pytest.raises(UsageError, match="holds the release 'imagenet-captions', not 'other'"):
        make_release(ReleaseOptions(build=str(text_build), out=str(out), name="other"))
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match=r"holds files a release does not have \(notes.txt\)"):
        make_release(ReleaseOptions(build=str(text_build), out=str(out)))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.csv").write_text("x")
    with pytest.raises(UsageError, match="not empty and not a release"):
        make_release(ReleaseOptions(build=str(text_build), out=str(foreign)))
    assert (foreign / "data.csv").read_text() == "x"


def test_an_interrupted_release_is_never_complete_and_the_next_run_finishes_it(
    text_build, tmp_path, monkeypatch
):
    out = tmp_path / "rel"

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(publish.card, "render_card", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        make_release(ReleaseOptions(build=str(text_build), out=str(out)))
    assert not (out / "manifest.json").exists() and (out / mf.INCOMPLETE_MARKER).exists()
    with pytest.raises(UsageError, match="does not exist: not a complete release"):
        mf.read_manifest(str(out))
    monkeypatch.undo()
    m = make_release(ReleaseOptions(build=str(text_build), out=str(out)))
    assert mf.verify_files(str(out), m["files"]) == [] and not (out / mf.INCOMPLETE_MARKER).exists()


def _broken_copy(build: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "build"
    shutil.copytree(build, copy)
    return copy


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda b: (b / "report.json").unlink(), "report.json does not exist: not a complete build"),
        (
            lambda b: (b / "captions" / "00001.parquet").unlink(),
            "00001.parquet is in the build's manifest but not on disk",
        ),
        (lambda b: (b / "captions" / "00001.parquet.tmp").write_bytes(b"x"), "unfinished files left behind"),
        (
            lambda b: shutil.copy(b / "captions" / "00000.parquet", b / "captions" / "00099.parquet"),
            "00099.parquet is on disk but not in the build's manifest",
        ),
        (
            lambda b: (b / "report.json").write_text(
                json.dumps(
                    json.loads((b / "report.json").read_text()) | {"accounting_problems": ["records: 3 lost"]}
                )
            ),
            "accounting problems: records: 3 lost",
        ),
        (
            lambda b: (b / "report.json").write_text(
                json.dumps(json.loads((b / "report.json").read_text()) | {"written": 1})
            ),
            "says 1 written, the shards hold",
        ),
        (lambda b: shutil.rmtree(b / "captions"), "holds no shards/ or captions/: not a build"),
        (
            lambda b: (b / "captions" / "00000.parquet").write_bytes(b"PAR1 cut"),
            "00000.parquet is 8 bytes, the build's manifest says",
        ),
        (
            lambda b: (
                (b / "captions" / ".commits").mkdir()
                or (b / "captions" / ".commits" / "00001.json").write_text("{}")
            ),
            "records of shards written after the manifest",
        ),
    ],
    ids=[
        "no-report",
        "missing-shard",
        "leftover-tmp",
        "stale-shard",
        "accounting",
        "written",
        "no-shards",
        "corrupt",
        "commits",
    ],
)
def test_incomplete_builds_are_refused(text_build, tmp_path, capsys, breakage, message):
    build = _broken_copy(text_build, tmp_path)
    breakage(build)
    out = tmp_path / "rel"
    assert main(["release", str(build), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1  # one line, no traceback
    assert not out.exists()  # nothing is written for a build that is refused


def test_a_build_being_written_is_refused(text_build, tmp_path):
    from imagenet_captions.locks import folder_lock

    build = _broken_copy(text_build, tmp_path)
    with folder_lock(str(build), "build"), pytest.raises(UsageError, match="build pid"):
        make_release(ReleaseOptions(build=str(build), out=str(tmp_path / "rel")))
    make_release(ReleaseOptions(build=str(build), out=str(tmp_path / "rel")))  # free again once it is done


def test_image_build_with_wrong_sizes_is_refused(image_build, tmp_path):
    build = _broken_copy(image_build, tmp_path)
    (build / "shards" / "sizes.json").write_text(json.dumps({"00000.tar": 1}))
    with pytest.raises(UsageError, match="sizes.json does not match"):
        make_release(ReleaseOptions(build=str(build), out=str(tmp_path / "rel")))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--version", "1.0"], "is not X.Y.Z"),
        (["--version", "v1.0.0"], "is not X.Y.Z"),
        (["--version", "1.02.0"], "is not X.Y.Z"),
        (["--date", "2026-13-01"], "is not YYYY-MM-DD"),
        (["--name", "has space"], "--name"),
        (["--threads", "0"], "at least 1"),
        (["--url", "ftp://x"], "http(s) URL"),
    ],
)
def test_bad_options_exit_2_with_one_line(text_build, tmp_path, capsys, args, message):
    assert main(["release", str(text_build), "--out", str(tmp_path / "rel"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_manifest_reader_refuses_what_it_cannot_trust(text_release, tmp_path):
    good = json.loads((text_release / "manifest.json").read_text())
    cases = {
        "format is 'other'": good | {"format": "other"},
        "format_version 2 is not 1": good | {"format_version": 2},
        "not a relative POSIX path": good
        | {"files": [{"path": "../etc/passwd", "size": 1, "sha256": "0" * 64}]},
        "sorted by path": good | {"files": list(reversed(good["files"]))},
        "is not X.Y.Z": good | {"version": "1"},
        "is not in files": good
        | {"files": [f for f in good["files"] if not f["path"].startswith("captions/")]},
    }
    for message, bad in cases.items():
        path = tmp_path / "manifest.json"
        path.write_text(json.dumps(bad))
        with pytest.raises(UsageError, match=message):
            mf.read_manifest(str(path))
    assert mf.check_manifest(good) == []


def test_card_header_is_what_the_hub_reads(text_release, image_release):
    m = mf.read_manifest(str(text_release))
    header = _front_matter(text_release / "README.md")
    assert header["pretty_name"] == "imagenet-captions"
    assert (header["license"], header["license_name"], header["license_link"]) == (
        "other",
        card.LICENSE_NAME,
        card.IMAGENET_TERMS_URL,
    )
    assert {"image-to-text", "zero-shot-image-classification"} <= set(header["task_categories"])
    assert header["size_categories"] == ["n<1K"] and m["build"]["counts"]["written"] < 1000
    assert header["configs"] == [
        {
            "config_name": "default",
            "data_files": [{"split": "train", "path": "captions/*.parquet"}],
            "default": True,
        }
    ]
    # The tars never get a config of their own (datasets would read them with the Parquet builder).
    assert _front_matter(image_release / "README.md")["configs"] == header["configs"]
    # The sample build runs no language identification (the release's default): the header says so.
    table = pq.ParquetDataset(sorted(str(p) for p in (text_release / "captions").glob("*.parquet"))).read()
    if table.column("lang").null_count == table.num_rows:
        assert header["language"] == ["multilingual"]
    else:
        langs = {
            d["values"]: d["counts"] for d in pc.value_counts(table.column("lang")).to_pylist() if d["values"]
        }
        assert header["language"] == card.card_languages(langs)


def test_card_body_counts_come_from_the_data(image_build, image_release):
    text = (image_release / "README.md").read_text()
    report = json.loads((image_build / "report.json").read_text())
    for what in ("records", "images"):
        assert f"| {what} | input | {report[what]['input']:,} |" in text
        for reason, n in report[what]["outcomes"].items():
            assert f"| {what} | {reason} | {n:,} |" in text
    table = pq.ParquetDataset(sorted(str(p) for p in (image_release / "captions").glob("*.parquet"))).read()
    licences = {d["values"]: d["counts"] for d in pc.value_counts(table.column("license")).to_pylist()}
    unknown = table.column("license").null_count
    assert f"| unknown | not recorded (null `license`) |  | {unknown:,} |" in text
    for lid, (name, url) in card.FLICKR_LICENSES.items():
        assert f"| {lid} | {name} | {url} | {licences.get(lid, 0):,} |" in text
    # The sample has 10 classes: the other 990 (teddy bear among them) are named as missing.
    assert "990 ImageNet classes have no record" in text and card.TEDDY_NOTE in text
    assert "Alex Fang and Ilharco" not in text and "Fang, Alex and Ilharco, Gabriel" in text
    assert "Data Determines Distributional Robustness" in text and "2205.01397" in text
    for field in ("key", "caption", "tags", "license"):
        assert f"| {field} | `" in text


def test_size_categories_and_languages():
    assert [card.size_category(n) for n in (0, 999, 1000, 99_999, 448_896, 1_000_000)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "10K<n<100K",
        "100K<n<1M",
        "1M<n<10M",
    ]
    assert card.card_languages({"en": 600, "de": 100, "und": 50, "war": 20, "fr": 5}) == ["en", "de"]
    assert card.card_languages({}) == ["multilingual"]
