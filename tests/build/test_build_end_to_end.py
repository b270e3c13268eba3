"""Whole builds on the FnApiRunner over the generated ILSVRC-shaped sample (folder and tar)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from PIL import Image

from imagenet_captions.build import BuildConfig, run_build
from imagenet_captions.cli import main


def _tar_members(path: Path | str) -> dict[str, bytes]:
    with tarfile.open(path) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers()}


def _digests(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "shards").glob("0*"))}


@pytest.fixture(scope="module")
def folder_build(sample_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("folder_build")
    rep = run_build(
        BuildConfig(
            metadata=f"release:{sample_dir / 'imagenet_captions.json'}",
            imagenet=str(sample_dir / "train"),
            out=str(out),
        )
    )
    return out, rep


def test_every_record_and_image_is_accounted_for(folder_build, sample_dir):
    out, rep = folder_build
    expect = json.loads((sample_dir / "expect.json").read_text())
    assert rep["accounting_problems"] == []
    assert rep["records"]["input"] == expect["records"] == 82
    assert rep["records"]["outcomes"] == {
        "written": len(expect["written"]),
        "corrupt_image": 2,
        "duplicate": 1,
        "no_image": 1,
    }
    assert rep["images"] == {"input": 81, "outcomes": {"matched": 80, "no_record": 1}}
    corrupt = {e["key"]: e["detail"] for e in rep["examples"]["records"]["corrupt_image"]}
    assert any("truncated" in d for d in corrupt.values()) and "empty file" in corrupt.values()


def test_shards_load_with_webdataset_and_pyarrow(folder_build, sample_dir):
    out, rep = folder_build
    expect = json.loads((sample_dir / "expect.json").read_text())
    tars = sorted(str(p) for p in (out / "shards").glob("*.tar"))
    sizes = json.loads((out / "shards" / "sizes.json").read_text())
    assert list(sizes) == [Path(t).name for t in tars] and sum(sizes.values()) == rep["written"]
    samples = list(wds.WebDataset(tars, shardshuffle=False, empty_check=False).decode("pil"))
    assert sorted(s["__key__"] for s in samples) == expect["written"]
    for s in samples:
        assert (
            s["jpg"].mode in ("RGB", "L")
            and s["cls"] == s["json"]["label"]
            and s["txt"] == s["json"]["caption"]
        )
    odd = {s["json"]["image_mode"]: s for s in samples if s["json"]["image_action"] != "kept"}
    assert set(odd) == {"CMYK", "RGB"}  # the CMYK JPEG and the PNG named .JPEG were re-encoded
    assert all(
        Image.open(io.BytesIO(data)).format == "JPEG"
        for t in tars
        for name, data in _tar_members(t).items()
        if name.endswith(".jpg")
    )
    table = pq.ParquetDataset(sorted(str(p) for p in (out / "shards").glob("*.parquet"))).read()
    assert sorted(table.column("key").to_pylist()) == expect["written"]
    real = table.filter(pc.equal(table["key"], "n03146219_14833"))  # one of the three real records
    assert real.num_rows == 1 and "armour" in real.column("caption")[0].as_py()


def test_tar_source_gives_byte_identical_shards(folder_build, sample_dir, sample_tar, tmp_path):
    out, _ = folder_build
    rep = run_build(
        BuildConfig(
            metadata=f"release:{sample_dir / 'imagenet_captions.json'}",
            imagenet=str(sample_tar),
            out=str(tmp_path),
        )
    )
    assert rep["accounting_problems"] == [] and rep["written"] == 78
    assert _digests(tmp_path) == _digests(out)


def test_records_in_another_order_give_byte_identical_shards(folder_build, sample_dir, tmp_path):
    out, _ = folder_build
    records = json.loads((sample_dir / "imagenet_captions.json").read_text())
    permuted = tmp_path / "permuted.json"
    permuted.write_text(json.dumps(records[::-1]))
    run_build(
        BuildConfig(
            metadata=f"release:{permuted}", imagenet=str(sample_dir / "train"), out=str(tmp_path / "b")
        )
    )
    assert _digests(tmp_path / "b") == _digests(out)


def test_text_only_build_writes_captions_table(sample_dir, tmp_path):
    rep = run_build(
        BuildConfig(metadata=f"release:{sample_dir / 'imagenet_captions.json'}", out=str(tmp_path))
    )
    assert "images" not in rep and rep["accounting_problems"] == []
    assert rep["records"]["outcomes"] == {"written": 81, "duplicate": 1}
    table = pq.ParquetDataset(sorted(str(p) for p in (tmp_path / "captions").glob("*.parquet"))).read()
    assert table.num_rows == 81 and table.schema.field("tags").type == pa.list_(pa.string())
    assert not list(tmp_path.rglob("*.tar"))


def test_bad_records_are_named_and_everything_else_is_written(tmp_path):
    records = [
        {
            "filename": "n01440764_1.JPEG",
            "title": "ok",
            "tags": ["a"],
            "description": "",
            "wnid": "n01440764",
        },
        {
            "filename": "n01440764_2.JPEG",
            "title": "big",
            "tags": [],
            "description": "word " * 200_000,
            "wnid": "n01440764",
        },
        {
            "filename": "n01440764_3.JPEG",
            "title": "bad \ud800 surrogate",
            "tags": [],
            "description": "",
            "wnid": "n01440764",
        },
        {"filename": "holiday.jpg", "title": "x", "tags": [], "description": "", "wnid": "n01440764"},
        {"filename": "n09999999_1.JPEG", "title": "x", "tags": [], "description": "", "wnid": "n09999999"},
        {"filename": "n01440764_4.JPEG", "title": 5, "tags": [], "description": "", "wnid": "n01440764"},
        "not an object",
    ]
    path = tmp_path / "r.json"
    raw = json.dumps(records).encode().replace(b"ok", b"o\xff\xfek")  # invalid UTF-8 bytes in one title
    path.write_bytes(raw)
    rep = run_build(BuildConfig(metadata=f"release:{path}", out=str(tmp_path / "o")))
    assert rep["records"]["input"] == 7 and rep["accounting_problems"] == []
    assert rep["records"]["outcomes"] == {
        "written": 3,
        "bad_filename": 1,
        "unknown_class": 1,
        "malformed_record": 2,
    }
    rows = {
        r["key"]: r
        for r in pq.ParquetDataset(sorted(str(p) for p in (tmp_path / "o" / "captions").glob("*.parquet")))
        .read()
        .to_pylist()
    }
    assert rows["n01440764_1"]["title"].startswith("o") and "\ud800" not in rows["n01440764_3"]["title"]
    assert len(rows["n01440764_2"]["description"]) > 900_000


def test_cli_build_and_clear_error_for_a_bad_file(sample_dir, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"filename": "not a list"}')
    assert main(["build", "--metadata", f"release:{bad}", "--out", str(tmp_path / "x")]) == 2
    assert "not a JSON list" in capsys.readouterr().err
    assert (
        main(["build", "--metadata", f"release:{tmp_path / 'missing.json'}", "--out", str(tmp_path / "x")])
        == 2
    )
    assert main(["build", "--metadata", "s3-ish-thing", "--out", str(tmp_path / "x")]) == 2


def test_cli_summary_says_what_the_shards_cost(sample_dir, tmp_path, capsys):
    argv = ["build", "--metadata", f"release:{sample_dir / 'imagenet_captions.json'}", "--out", str(tmp_path)]
    assert main(argv) == 0
    first = re.search(
        r"shards: (\d+) written, 0 unchanged and kept", " ".join(capsys.readouterr().err.split())
    )
    assert first and int(first[1]) >= 2
    assert main(argv) == 0  # nothing changed: every shard kept
    assert f"shards: 0 written, {first[1]} unchanged and kept" in " ".join(capsys.readouterr().err.split())


def test_cli_multiprocess_run_gives_the_same_bytes(folder_build, sample_dir, tmp_path):
    out, _ = folder_build
    code = main(
        [
            "build",
            "--metadata",
            f"release:{sample_dir / 'imagenet_captions.json'}",
            "--imagenet",
            str(sample_dir / "train"),
            "--out",
            str(tmp_path),
            "--direct_num_workers",
            "2",
            "--direct_running_mode",
            "multi_processing",
        ]
    )
    assert code == 0
    assert _digests(tmp_path) == _digests(out)


def test_incremental_rebuild_rewrites_only_changed_shards(sample_dir, tmp_path):
    records = json.loads((sample_dir / "imagenet_captions.json").read_text())
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps(records))
    cfg = BuildConfig(metadata=f"release:{meta}", imagenet=str(sample_dir / "train"), out=str(tmp_path / "o"))
    run_build(cfg)
    shard_dir = tmp_path / "o" / "shards"
    before = {p.name: p.stat().st_mtime_ns for p in shard_dir.glob("0*")}
    first = _digests(tmp_path / "o")
    target = next(r for r in records if r["filename"] == "n01530575_10007.JPEG")
    target["title"] = "a new title"
    meta.write_text(json.dumps(records))
    rep = run_build(cfg)
    after = {p.name: p.stat().st_mtime_ns for p in shard_dir.glob("0*")}
    changed = sorted(n for n in before if before[n] != after[n])
    manifest = json.loads((shard_dir / "manifest.json").read_text())
    owner = next(
        s for s in manifest["shards"] if "n01530575_10007.jpg" in _tar_members(shard_dir / f"{s}.tar")
    )
    assert changed == [f"{owner}.parquet", f"{owner}.tar"]
    assert rep["written"] == 78 and rep["accounting_problems"] == []
    assert rep["shards"]["written_now"] == 1 and rep["shards"]["kept"] == rep["shards"]["count"] - 1
    assert rep["shards"]["write_s"] > 0
    assert {k: v for k, v in _digests(tmp_path / "o").items() if not k.startswith(owner)} == {
        k: v for k, v in first.items() if not k.startswith(owner)
    }


def test_changing_the_shard_count_of_an_existing_output_is_refused(sample_dir, tmp_path):
    meta = f"release:{sample_dir / 'imagenet_captions.json'}"
    assert main(["build", "--metadata", meta, "--out", str(tmp_path), "--num-shards", "3"]) == 0
    assert main(["build", "--metadata", meta, "--out", str(tmp_path), "--num-shards", "4"]) == 2


def test_incremental_rebuild_notices_a_replaced_image(sample_dir, tmp_path):
    import os
    import shutil

    train = tmp_path / "train"
    shutil.copytree(sample_dir / "train", train)
    cfg = BuildConfig(
        metadata=f"release:{sample_dir / 'imagenet_captions.json'}",
        imagenet=str(train),
        out=str(tmp_path / "o"),
    )
    run_build(cfg)
    shard_dir = tmp_path / "o" / "shards"
    before = {p.name: p.stat().st_mtime_ns for p in shard_dir.glob("0*")}
    image = train / "n01644373" / "n01644373_10007.JPEG"
    data = image.read_bytes()
    image.write_bytes(data)  # same bytes and size, new modification time: the shard is rebuilt
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    run_build(cfg)
    after = {p.name: p.stat().st_mtime_ns for p in shard_dir.glob("0*")}
    assert len([n for n in before if before[n] != after[n]]) == 2
