import io
import json
import shutil
import tarfile

import pyarrow.parquet as pq
import pytest

from imagenet_captions.build import BuildConfig, run_build
from imagenet_captions.cli import main
from imagenet_captions.shards.validate import validate_build


@pytest.fixture(scope="module")
def built(sample_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("validate_build")
    run_build(
        BuildConfig(
            metadata=f"release:{sample_dir / 'imagenet_captions.json'}",
            imagenet=str(sample_dir / "train"),
            out=str(out),
            num_shards=8,
        )
    )
    return out


@pytest.fixture
def copy(built, tmp_path):
    dst = tmp_path / "b"
    shutil.copytree(built, dst)
    return dst


def _rewrite_tar(path, edit):
    with tarfile.open(path) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf.getmembers()]
    members = edit(members)
    with tarfile.open(path, "w") as tf:
        for m, data in members:
            m.size = len(data)
            tf.addfile(m, io.BytesIO(data))


def test_a_fresh_build_validates(built, capsys):
    summary, problems = validate_build(str(built), decode=True)
    assert problems == [] and summary["samples"] == 78 and summary["shards"] == 8
    assert main(["validate", str(built)]) == 0
    assert "OK: 8 shards, 78 samples" in capsys.readouterr().out


def test_truncated_tar(copy):
    tar = copy / "shards" / "00001.tar"
    tar.write_bytes(tar.read_bytes()[:3000])
    _, problems = validate_build(str(copy))
    assert any("00001.tar: unreadable or incomplete" in p for p in problems)
    assert any("sizes.json" in p for p in problems) and any("report.json says" in p for p in problems)
    assert main(["validate", str(copy)]) == 1


def test_missing_member_and_truncated_jpeg(copy):
    def edit(members):
        members = [(m, d) for m, d in members if m.name != members[1][0].name]  # drop the first .txt
        m, d = members[3]
        assert m.name.endswith(".jpg")
        members[3] = (m, d[: len(d) // 2])
        return members

    _rewrite_tar(copy / "shards" / "00002.tar", edit)
    _, problems = validate_build(str(copy))
    assert any("has members ['cls', 'jpg', 'json']" in p for p in problems)
    assert any("no JPEG end marker" in p for p in problems)


def test_parquet_out_of_step_with_tar(copy):
    path = copy / "shards" / "00003.parquet"
    table = pq.read_table(path)
    pq.write_table(table.take(list(range(table.num_rows))[::-1]), path)
    _, problems = validate_build(str(copy))
    assert any("00003.tar: Parquet rows" in p for p in problems)


def test_duplicate_key_across_shards_and_leftover_tmp(copy):
    with tarfile.open(copy / "shards" / "00000.tar") as tf:
        first = [(m, tf.extractfile(m).read()) for m in tf.getmembers()[:4]]
    _rewrite_tar(copy / "shards" / "00005.tar", lambda ms: ms + first)
    (copy / "shards" / "00006.tar.tmp").write_bytes(b"")
    _, problems = validate_build(str(copy))
    key = first[0][0].name.split(".")[0]
    assert any(f"key {key} is in 00000.tar and 00005.tar" in p for p in problems)
    assert any("unfinished file left behind: 00006.tar.tmp" in p for p in problems)


def test_report_that_disagrees(copy):
    rep = json.loads((copy / "report.json").read_text())
    rep["written"] += 1
    (copy / "report.json").write_text(json.dumps(rep))
    _, problems = validate_build(str(copy))
    assert problems == ["report.json says 79 written, the shards hold 78"]


def test_not_a_build(tmp_path):
    assert main(["validate", str(tmp_path)]) == 2
