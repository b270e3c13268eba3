"""``release`` of a ``match`` output: what it publishes, what it checks, what its card and Croissant
say, and that ``download`` fetches it unchanged from a loopback host."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from download_helpers import run_download, tree
from PIL import Image

from imagenet_captions import manifest as mf
from imagenet_captions.cli import main
from imagenet_captions.errors import UsageError
from imagenet_captions.release.publish import ReleaseOptions, make_release
from imagenet_captions.testing.static_host import StaticHost

#: Captions naming one class each (tabby, goldfish, volcano), and one naming none.
CAPTIONS = ["my tabby on the sofa", "a goldfish in its bowl", "the volcano at dawn", "a quiet day"]
DATE = "2026-01-01"


def _jpeg(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), ((37 * i) % 256, 90, 128)).save(buf, "JPEG")
    return buf.getvalue()


def _corpus(folder: Path) -> None:
    """Two tars in img2dataset's layout: ``<key>.jpg`` and ``<key>.txt``, made with Pillow."""
    folder.mkdir(parents=True)
    for shard in range(2):
        with tarfile.open(folder / f"{shard:05d}.tar", "w", format=tarfile.USTAR_FORMAT) as tf:
            for i in range(8):
                key = f"{shard:05d}{i:04d}"
                for ext, data in (("jpg", _jpeg(i)), ("txt", CAPTIONS[i % len(CAPTIONS)].encode())):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def matched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("matched")
    _corpus(root / "corpus")
    out = root / "out"
    assert (
        main(["match", "--corpus", f"webdataset:{root / 'corpus'}", "--out", str(out), "--num-shards", "2"])
        == 0
    )
    return out


@pytest.fixture(scope="module")
def text_release(matched: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("match_release") / "rel"
    make_release(ReleaseOptions(build=str(matched), out=str(out), name="wds-cls", version="0.2.0", date=DATE))
    return out


def _match_manifest(matched: Path) -> dict:
    return json.loads((matched / "manifest.json").read_text())


def test_text_release_publishes_the_matches_with_the_matchs_sizes_and_digests(matched, text_release):
    manifest = mf.read_manifest(str(text_release))
    paths = [f["path"] for f in manifest["files"]]
    assert paths == ["README.md", "croissant.json", "matches/00000.parquet", "matches/00001.parquet"]
    assert mf.verify_files(str(text_release), manifest["files"]) == []
    source = _match_manifest(matched)
    for stem, shard in manifest["shards"].items():
        recorded = source["shards"][stem]
        name = f"matches/{stem}.parquet"
        assert (shard["parquet"]["size"], shard["parquet"]["sha256"]) == (
            recorded["sizes"][name],
            recorded["sha256"][name],
        )
        tar = f"shards/{stem}.tar"
        assert shard["tar"] == {
            "name": f"{stem}.tar",
            "sha256": recorded["sha256"][tar],
            "size": recorded["sizes"][tar],
            "published": False,
        }
        assert shard["samples"] == recorded["written"] == pq.read_metadata(text_release / name).num_rows
    section = manifest["build"]
    assert section["stage"] == "match"
    assert section["labels"] == source["labels"] and section["labels"] == sorted(section["labels"])
    assert section["counts"]["written"] == 12  # 2 tars x 8 samples x 3 of 4 captions
    report = json.loads((matched / "report.json").read_text())
    assert section["vocabulary"]["digest"] == report["vocabulary"]["digest"]
    assert [f["name"] for f in section["corpus"]["files"]] == ["00000.tar", "00001.tar"]
    assert [f["sha256"] for f in section["corpus"]["files"]] == [
        f["sha256"] for f in report["corpus"]["files"]
    ]


def test_nothing_published_names_a_path_of_the_publishers_disk(matched, text_release):
    root = str(matched.parent)
    for path in text_release.rglob("*"):
        if path.is_file() and path.suffix != ".parquet":
            assert root not in path.read_text(), path.name
    assert "images" not in mf.read_manifest(str(text_release))["build"]["options"]  # local mtimes


def test_card_says_it_is_a_class_matched_subset_and_names_the_classes(matched, text_release):
    readme = (text_release / "README.md").read_text()
    report = json.loads((matched / "report.json").read_text())
    assert "**A class-matched subset** of a `webdataset` image-text corpus" in readme
    assert report["vocabulary"]["digest"] in readme
    assert "No balancing" in readme
    for f in report["corpus"]["files"]:
        assert f"| {Path(f['path']).name} | {f['size']:,} | `{f['sha256']}` |" in readme
    assert "| 281 | n02123045 | tabby | 4 |" in readme  # label, wnid, name, rows
    assert "path: matches/*.parquet" in readme
    assert "ImageNet's terms" not in readme  # the corpus's images, not ImageNet's


def test_croissant_is_valid_and_reads_back_the_matches_and_the_class_list(text_release):
    mlc = pytest.importorskip("mlcroissant")
    dataset = mlc.Dataset(jsonld=str(text_release / "croissant.json"))
    issues = dataset.metadata.ctx.issues
    assert not issues.errors and not issues.warnings, issues.report()
    rows = pq.ParquetDataset(sorted(str(p) for p in (text_release / "matches").glob("*.parquet"))).read()
    records = list(dataset.records(record_set="matches"))
    assert sorted(r["matches/key"].decode() for r in records) == sorted(rows.column("key").to_pylist())
    classes = list(dataset.records(record_set="classes"))
    assert len(classes) == 1000 and classes[281]["classes/wnid"] == "n02123045"
    doc = json.loads((text_release / "croissant.json").read_text())
    assert "class-matched subset" in doc["description"]
    files = next(s for s in doc["recordSet"] if s["@id"] == "corpus_files")["data"]
    assert [f["corpus_files/name"] for f in files] == ["00000.tar", "00001.tar"]


def test_with_images_publishes_the_tars_and_sizes(matched, tmp_path, capsys):
    out = tmp_path / "rel"
    rc = main(
        [
            "release",
            str(matched),
            "--out",
            str(out),
            "--name",
            "wds-cls",
            "--version",
            "1.0.0",
            "--with-images",
        ]
    )
    assert rc == 0
    stdout, stderr = capsys.readouterr()
    assert "12 rows" in stdout, stdout
    assert "the corpus's images" in stderr and "ImageNet" not in stderr, stderr
    manifest = mf.read_manifest(str(out))
    assert [f["path"] for f in manifest["files"] if f["path"].startswith("shards/")] == [
        "shards/00000.tar",
        "shards/00001.tar",
        "shards/sizes.json",
    ]
    for stem in ("00000", "00001"):
        assert (out / "shards" / f"{stem}.tar").read_bytes() == (
            matched / "shards" / f"{stem}.tar"
        ).read_bytes()
    assert (out / "shards" / "sizes.json").read_bytes() == (matched / "shards" / "sizes.json").read_bytes()
    assert mf.verify_files(str(out), manifest["files"]) == []


def _flip_a_byte(path: Path, at: int | None = None) -> None:
    """Change one byte (by default in the middle; a Parquet file's footer is near its end)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if at is None else at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "named", "with_images"),
    [
        (lambda out: _flip_a_byte(out / "matches" / "00001.parquet", 8), "00001.parquet: its sha256", False),
        (lambda out: _flip_a_byte(out / "shards" / "00000.tar"), "00000.tar: its sha256", False),
        (
            lambda out: (out / "shards" / "00000.tar").write_bytes(
                (out / "shards" / "00000.tar").read_bytes()[:-1024]
            ),
            "00000.tar is",
            True,
        ),
        (lambda out: (out / "report.json").unlink(), "report.json does not exist", False),
        (
            lambda out: (out / "matches" / "00002.parquet").write_bytes(b"x"),
            "00002.parquet is on disk but not in the match's manifest",
            False,
        ),
        (
            lambda out: (out / "matches" / "00000.parquet.123-ab.tmp").write_bytes(b"x"),
            "unfinished files left behind",
            False,
        ),
    ],
)
def test_a_match_output_changed_after_the_match_is_refused_naming_the_file(
    matched, tmp_path, damage, named, with_images
):
    copy = tmp_path / "out"
    shutil.copytree(matched, copy)
    damage(copy)
    with pytest.raises(UsageError, match=named):
        make_release(
            ReleaseOptions(build=str(copy), out=str(tmp_path / "rel"), with_images=with_images, date=DATE)
        )
    assert not (tmp_path / "rel").exists()  # a refused release leaves nothing


def test_download_fetches_a_match_release_unchanged(matched, tmp_path, capsys):
    release = tmp_path / "rel"
    make_release(ReleaseOptions(build=str(matched), out=str(release), with_images=True, date=DATE))
    out = tmp_path / "down"
    with StaticHost(release) as host:
        rc, stdout, err = run_download(
            capsys, host.url + "manifest.json", "--out", str(out), "--backoff", "0.01"
        )
    assert rc == 0, stdout + err
    assert tree(out) == tree(release)
    assert stdout.startswith("OK: 7 files verified"), stdout


def test_a_build_from_a_match_release_says_what_it_is(matched, tmp_path, capsys):
    """A match release is not a text release of a build: one line that says so, exit 2."""
    from imagenet_captions.cli import main

    release = tmp_path / "rel"
    make_release(ReleaseOptions(build=str(matched), out=str(release), date=DATE))
    rc = main(["build", "--metadata", f"text-release:{release}", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "a release of a class-matched subset" in err and "Traceback" not in err, err
