"""``validate`` of a ``match`` output: its files against its manifest (sizes, sha256), its tars against
its Parquet files, ``sizes.json`` and the report; one problem line per finding, exit 1."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from imagenet_captions.cli import main
from imagenet_captions.match.plan import MATCHES_DIR
from imagenet_captions.shards import validate
from imagenet_captions.shards.validate import validate_build, validate_match

CAPTIONS = ["my tabby on the sofa", "a goldfish and a tabby", "the volcano at dawn", "a quiet day"]


def _webdataset(folder: Path) -> None:
    """One tar in img2dataset's layout (``<key>.jpg``, ``<key>.txt``), images made with Pillow."""
    folder.mkdir(parents=True)
    with tarfile.open(folder / "00000.tar", "w", format=tarfile.USTAR_FORMAT) as tf:
        for i in range(12):
            buf = io.BytesIO()
            Image.new("RGB", (16, 12), (20 * i, 90, 128)).save(buf, "JPEG")
            for ext, data in (("jpg", buf.getvalue()), ("txt", CAPTIONS[i % len(CAPTIONS)].encode())):
                info = tarfile.TarInfo(f"{i:09d}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def matched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A webdataset match under ``--multiple all``: a caption naming two classes is two samples."""
    root = tmp_path_factory.mktemp("matched")
    _webdataset(root / "corpus")
    out = root / "out"
    args = ["match", "--corpus", f"webdataset:{root / 'corpus'}", "--out", str(out), "--num-shards", "2"]
    assert main([*args, "--multiple", "all"]) == 0
    return out


@pytest.fixture
def copy(matched: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(matched, out)
    return out


def test_the_layouts_folder_name_is_matchs_own():
    assert validate.MATCHES_DIR == MATCHES_DIR


def test_a_whole_match_output_validates(matched, capsys):
    summary, problems = validate_build(str(matched))
    assert problems == []
    assert summary["samples"] == 12  # 3 rows each of tabby and volcano, 3 of goldfish and tabby (2 samples)
    assert main(["validate", str(matched)]) == 0
    assert capsys.readouterr().out.startswith("OK: 2 shards, 12 samples")


def test_a_parquet_corpus_match_validates_without_tars(tmp_path):
    pq.write_table(pa.table({"caption": CAPTIONS, "url": [f"https://x/{i}.jpg" for i in range(4)]}), tmp_path / "c.parquet")
    out = tmp_path / "out"
    assert main(["match", "--corpus", f"parquet:{tmp_path / 'c.parquet'}", "--out", str(out), "--num-shards", "2"]) == 0
    summary, problems = validate_match(str(out))
    assert problems == [] and summary["text_only"] and summary["samples"] == 2  # tabby; volcano


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def _recut_tar(path: Path, drop_last: bool) -> None:
    """Write the tar again with its last sample's members left out, or its last member changed."""
    with tarfile.open(path) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf.getmembers()]  # type: ignore[union-attr]  # regular files only
    if drop_last:
        last = members[-1][0].name.split(".")[0]
        members = [(m, d) for m, d in members if not m.name.startswith(last)]
    else:
        m, _ = members[-1]
        members[-1] = (m, b"9")  # the .cls member: another label
        m.size = 1
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tf:
        for m, d in members:
            tf.addfile(m, io.BytesIO(d))


@pytest.mark.parametrize(
    ("damage", "found"),
    [
        (lambda out: _flip(out / "shards" / "00000.tar", 600), "shards/00000.tar: sha256 differs from manifest.json's"),
        (lambda out: _flip(out / "matches" / "00001.parquet", 8), "matches/00001.parquet: sha256 differs"),
        (lambda out: _recut_tar(out / "shards" / "00001.tar", True), "shards/00001.tar: its samples"),
        (lambda out: _recut_tar(out / "shards" / "00001.tar", False), ".cls b'9' != Parquet label"),
        (lambda out: (out / "shards" / "sizes.json").write_text('{"00000.tar": 1}'), "shards/sizes.json"),
        (lambda out: (out / "shards" / "00000.tar").unlink(), "unreadable or incomplete tar"),
        (lambda out: shutil.copy(out / "matches" / "00000.parquet", out / "matches" / "00002.parquet"), "first differing: matches/00002.parquet"),
        (lambda out: (out / "matches" / "00000.parquet.1-ab.tmp").write_bytes(b""), "unfinished file left behind"),
        (lambda out: (out / "report.json").write_text(json.dumps({"written": {"pairs": 3}})), "report.json says 3 pairs written"),
    ],
)
def test_damage_is_a_named_problem_and_exit_1(copy, capsys, damage, found):
    damage(copy)
    _, problems = validate_match(str(copy))
    assert any(found in p for p in problems), problems
    assert main(["validate", str(copy)]) == 1
    assert found in capsys.readouterr().out


def test_against_a_match_release_says_each_shard_is_the_publishers(matched, copy, tmp_path, capsys):
    from imagenet_captions.release.publish import ReleaseOptions, make_release

    release = tmp_path / "rel"
    make_release(ReleaseOptions(build=str(matched), out=str(release), date="2026-01-01"))
    assert main(["validate", str(matched), "--against", str(release)]) == 0
    assert "2 of 2 shards equal to the publisher's" in capsys.readouterr().out
    _flip(copy / "matches" / "00001.parquet", 8)
    assert main(["validate", str(copy), "--against", str(release)]) == 1
    assert "shard 00001 is not the publisher's: 00001.parquet differs" in capsys.readouterr().out
