"""The ``match`` command end to end on the in-process runner: outputs, the report's accounting,
whole-corpus errors as one line, balancing against the literal hash order, labelled corpora, and
the same bytes whatever the split into parts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from corpus_helpers import (
    NO_CLASS,
    ONE_CLASS,
    REAL_SAMPLE,
    img2dataset_samples,
    odd_captions,
    write_jsonl,
    write_parquet,
    write_webdataset,
)

from imagenet_captions.classes import wnid_to_label
from imagenet_captions.cli import main
from imagenet_captions.match.matcher import Matcher
from imagenet_captions.match.options import apply_preset
from imagenet_captions.match.vocabulary import load_vocabulary
from imagenet_captions.outcomes import REASONS


def match(capsys: pytest.CaptureFixture[str], corpus: str, out: Path, *extra: str) -> tuple[int, str]:
    rc = main(["match", "--corpus", corpus, "--out", str(out), *extra])
    return rc, capsys.readouterr().err


def report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def rows_of(out: Path) -> list[dict]:
    return [r for p in sorted((out / "matches").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]


def digests(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "report.json"
    }


def test_a_parquet_corpus_of_odd_captions_end_to_end(tmp_path, capsys):
    captions = odd_captions()
    n = len(captions)
    path = write_parquet(
        tmp_path / "web-00.parquet",
        {"caption": captions, "URL": [f"https://x/{i}" for i in range(n)], "width": list(range(n))},
    )
    out = tmp_path / "out"
    rc, err = match(capsys, f"parquet:{path}", out, "--keep-column", "width")
    assert rc == 0, err
    rows = rows_of(out)
    labels = wnid_to_label()
    assert [(r["key"], r["wnid"]) for r in rows] == [(f"web-00_{i:09d}", w) for i, (_, w) in enumerate(ONE_CLASS)]
    for i, r in enumerate(rows):
        assert r["label"] == labels[r["wnid"]] and r["url"] == f"https://x/{i}" and r["width"] == i
    assert rows[1]["caption"] == "the Golden Retriever & the ball"  # as matched: after the text cleaning
    assert rows[1]["terms"] == ["golden retriever"]
    assert pq.read_schema(out / "matches" / "00000.parquet").names == ["key", "caption", "wnid", "label", "terms", "url", "width"]
    rep = report(out)
    assert rep["rows"]["input"] == n and rep["accounting_problems"] == []
    assert rep["rows"]["outcomes"] == {"written": 6, "no_class": 2, "no_caption": 3, "several_classes": 1}
    assert set(rep["rows"]["outcomes"]) <= set(REASONS)
    assert rep["corpus"]["files"][0]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert rep["vocabulary"]["digest"] == load_vocabulary("wordnet", "ilsvrc2012").digest()
    assert rep["classes"]["n02123045"] == {"found": 1, "written": 1}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["labels"] == sorted(labels) and manifest["num_shards"] == 1
    assert not (out / ".spill").exists() and not (out / ".commits").exists()


@pytest.mark.parametrize(
    ("corpus", "message"),
    [
        ("csv:{d}/x.csv", "--corpus must be KIND:PATH"),
        ("parquet:{d}/nothing-*.parquet", "matches no file"),
        ("parquet:{d}/nocaption.parquet", "none of the caption columns"),
        ("parquet:{d}/corrupt.parquet", "is not readable Parquet"),
        ("webdataset:{d}/notatar.tar", "is not a tar"),
        ("jsonl:{d}/nofield.jsonl", "none of the caption fields"),
    ],
)
def test_whole_corpus_errors_are_one_line_and_write_nothing(tmp_path, capsys, corpus, message):
    write_parquet(tmp_path / "nocaption.parquet", {"alt": ["a"]})
    (tmp_path / "corrupt.parquet").write_bytes(b"PAR1" + b"\x00" * 50 + b"PAR1")
    (tmp_path / "notatar.tar").write_bytes(b"\x01" * 700)
    write_jsonl(tmp_path / "nofield.jsonl", [{"title": "x"}])
    out = tmp_path / "out"
    rc, err = match(capsys, corpus.format(d=tmp_path), out)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imagenet-captions match: error:") and message in lines[0], err
    assert not out.exists()


def test_jsonl_corpus_counts_its_unreadable_lines(tmp_path, capsys):
    path = write_jsonl(
        tmp_path / "yfcc.jsonl",
        [{"caption": "a goldfish", "url": "u0"}, "{oops", {"caption": 5}, {"caption": "nothing here"}, {"caption": None}],
    )
    out = tmp_path / "out"
    rc, err = match(capsys, f"jsonl:{path}", out)
    assert rc == 0, err
    rep = report(out)
    assert rep["rows"]["outcomes"] == {"written": 1, "bad_json": 1, "caption_not_text": 1, "no_class": 1, "no_caption": 1}
    assert [(r["key"], r["url"]) for r in rows_of(out)] == [("yfcc_000000000", "u0")]


def test_the_real_laion_sample_agrees_with_the_matcher_row_for_row(tmp_path, capsys):
    captions = pq.read_table(REAL_SAMPLE).column("TEXT").to_pylist()
    for preset in (None, "wen2024", "fang2022"):
        out = tmp_path / f"out-{preset}"
        rc, err = match(capsys, f"parquet:{REAL_SAMPLE}", out, *(["--preset", preset] if preset else []))
        assert rc == 0, err
        rule, names = apply_preset(preset)
        outcomes = Matcher(load_vocabulary(names, "ilsvrc2012"), rule).match_many(captions)
        expected = sorted(
            (f"laion_captions_sample_1000_{i:09d}", wnid, list(terms))
            for i, o in enumerate(outcomes)
            if isinstance(o, list)
            for wnid, terms in o
        )
        assert [(r["key"], r["wnid"], r["terms"]) for r in rows_of(out)] == expected
        rep = report(out)
        dropped = {}
        for o in outcomes:
            if not isinstance(o, list):
                dropped[o.reason] = dropped.get(o.reason, 0) + 1
        assert rep["rows"]["outcomes"] == {**dropped, "written": sum(isinstance(o, list) for o in outcomes)}
        assert rep["pairs"]["outcomes"] == {"written": len(expected)}


def _balance_corpus(tmp_path: Path) -> tuple[Path, list[str]]:
    captions = [f"tabby number {i}" for i in range(12)] + [f"a goldfish, {i}" for i in range(5)] + ["a lion"]
    return write_parquet(tmp_path / "bal.parquet", {"caption": captions}), captions


def _smallest(keys: list[str], wnid: str, n: int, seed: int) -> list[str]:
    """The ``n`` keys of smallest ``sha256(f"{seed}:{key}:{wnid}").hexdigest()``, as the issue states it."""
    return sorted(sorted(keys, key=lambda k: hashlib.sha256(f"{seed}:{k}:{wnid}".encode()).hexdigest())[:n])


@pytest.mark.parametrize("shards", ["1", "4"])
def test_balancing_keeps_the_rows_of_smallest_hash_per_class(tmp_path, capsys, shards):
    path, _ = _balance_corpus(tmp_path)
    targets = tmp_path / "targets.txt"
    targets.write_text("n02123045 4\nn01443537 9\n")  # tabby, goldfish; the lion's class is not listed: 0
    out = tmp_path / "out"
    rc, err = match(capsys, f"parquet:{path}", out, "--balance-to", str(targets), "--seed", "7", "--num-shards", shards)
    assert rc == 0, err
    tabby = [f"bal_{i:09d}" for i in range(12)]
    goldfish = [f"bal_{i:09d}" for i in range(12, 17)]
    got = sorted((r["wnid"], r["key"]) for r in rows_of(out))
    want = sorted([("n02123045", k) for k in _smallest(tabby, "n02123045", 4, 7)] + [("n01443537", k) for k in goldfish])
    assert got == want
    rep = report(out)
    assert rep["rows"]["outcomes"] == {"written": 9, "over_quota": 9} and rep["accounting_problems"] == []
    assert rep["classes"]["n02123045"] == {"found": 12, "written": 4, "target": 4, "kept": 4, "shortfall": 0}
    assert rep["classes"]["n01443537"] == {"found": 5, "written": 5, "target": 9, "kept": 5, "shortfall": 4}
    assert rep["classes"]["n02129165"] == {"found": 1, "written": 0, "target": 0, "kept": 0, "shortfall": 0}


def test_max_per_class_with_several_classes_a_row(tmp_path, capsys):
    path = write_parquet(tmp_path / "m.parquet", {"caption": ["a goldfish and a tabby", "a tabby", "a goldfish"]})
    out = tmp_path / "out"
    rc, err = match(capsys, f"parquet:{path}", out, "--multiple", "all", "--max-per-class", "1")
    assert rc == 0, err
    keys = ["m_000000000", "m_000000001", "m_000000002"]
    want = {("n02123045", k) for k in _smallest(keys[:2], "n02123045", 1, 0)}
    want |= {("n01443537", k) for k in _smallest([keys[0], keys[2]], "n01443537", 1, 0)}
    assert {(r["wnid"], r["key"]) for r in rows_of(out)} == want
    rep = report(out)
    assert rep["pairs"] == {"matched": 4, "outcomes": {"written": 2, "over_quota": 2}}
    written_rows = len({k for _, k in want})
    assert rep["rows"]["outcomes"] == {"written": written_rows, "over_quota": 3 - written_rows}


def test_a_key_two_rows_share_keeps_the_first_row(tmp_path, capsys):
    write_parquet(tmp_path / "a.parquet", {"caption": ["a tabby", "a goldfish"], "uid": ["k1", "k2"]})
    write_parquet(tmp_path / "b.parquet", {"caption": ["a lion", "a volcano"], "uid": ["k1", "k3"]})
    out = tmp_path / "out"
    rc, err = match(capsys, f"parquet:{tmp_path}/*.parquet", out, "--key-column", "uid", "--num-shards", "3")
    assert rc == 0, err
    assert [(r["key"], r["wnid"]) for r in rows_of(out)] != []
    assert {r["key"]: r["wnid"] for r in rows_of(out)} == {"k1": "n02123045", "k2": "n01443537", "k3": "n09472597"}
    assert report(out)["rows"]["outcomes"] == {"written": 3, "duplicate_key": 1}


def test_the_same_bytes_whatever_the_split_into_parts_and_the_order_of_files(tmp_path, capsys):
    captions = pq.read_table(REAL_SAMPLE).column("TEXT").to_pylist()
    for i in range(3):
        write_parquet(tmp_path / "c" / f"f{i}.parquet", {"caption": captions[i::3]}, row_group_size=37)
    one, many = tmp_path / "one", tmp_path / "many"
    assert match(capsys, f"parquet:{tmp_path / 'c'}", one, "--num-shards", "5")[0] == 0
    assert match(capsys, f"parquet:{tmp_path / 'c'}", many, "--num-shards", "5", "--direct_num_workers", "4")[0] == 0
    assert len(json.loads((many / "manifest.json").read_text())["shards"]) == 5
    assert digests(one) == digests(many) and len(digests(one)) == 6
    assert report(one)["rows"] == report(many)["rows"]


def test_a_dry_run_translates_the_graph_and_writes_nothing_but_the_lock_folder(tmp_path, capsys):
    path = write_parquet(tmp_path / "d.parquet", {"caption": ["a lion"]})
    out = tmp_path / "out"
    rc = main(["match", "--corpus", f"parquet:{path}", "--out", str(out), "--balance-to", "imagenet-captions", "--dry_run"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "MatchPart" in printed and "SelectClass" in printed and "Finalize" in printed
    assert not (out / "report.json").exists() and not (out / "matches").exists()


def _release_json(path: Path) -> Path:
    """An official-release-shaped file: three records whose titles name their class, another, none."""
    records = [
        {"filename": "n01443537_1.JPEG", "title": "my goldfish", "tags": [], "description": "", "wnid": "n01443537"},
        {"filename": "n01443537_2.JPEG", "title": "a tabby", "tags": [], "description": "", "wnid": "n01443537"},
        {"filename": "n02123045_3.JPEG", "title": "sofa", "tags": ["home"], "description": "", "wnid": "n02123045"},
        {"filename": "n02123045_4.JPEG", "title": "tabby and goldfish", "tags": [], "description": "", "wnid": "n02123045"},
        {"filename": "bad name", "title": "x", "tags": [], "description": "", "wnid": "n02123045"},
    ]
    path.write_text(json.dumps(records))
    return path


def test_a_release_reports_how_often_captions_name_their_own_class(tmp_path, capsys):
    release = _release_json(tmp_path / "imagenet_captions.json")
    out = tmp_path / "out"
    rc, err = match(capsys, f"release:{release}", out)
    assert rc == 0, err
    rep = report(out)
    assert rep["rows"]["outcomes"] == {"written": 2, "no_class": 1, "several_classes": 1, "bad_filename": 1}
    labels = rep["labels"]
    assert labels["per_class"]["n01443537"] == {"own": 1, "other": 1, "rows": 2, "own_share": 0.5, "other_share": 0.5}
    assert labels["per_class"]["n02123045"]["own"] == 1 and labels["per_class"]["n02123045"]["none"] == 1
    assert labels["per_class"]["n02123045"]["own_and_other"] == 1
    assert labels["overall"]["rows"] == 4 and labels["overall"]["own"] == 2


def test_a_text_release_is_matched_on_its_publishers_captions(tmp_path, capsys):
    from imagenet_captions.build import BuildConfig, run_build
    from imagenet_captions.release.publish import ReleaseOptions, make_release

    release = _release_json(tmp_path / "imagenet_captions.json")
    run_build(BuildConfig(metadata=f"release:{release}", out=str(tmp_path / "build")))
    make_release(ReleaseOptions(build=str(tmp_path / "build"), out=str(tmp_path / "rel"), version="1.0.0", date="2026-01-01"))
    out = tmp_path / "out"
    rc, err = match(capsys, f"text-release:{tmp_path / 'rel'}", out)
    assert rc == 0, err
    rep = report(out)
    assert rep["rows"]["input"] == 4 and rep["rows"]["outcomes"]["written"] == 2
    assert rep["labels"]["overall"]["own"] == 2


def test_a_webdataset_corpus_writes_tars_train_reads(tmp_path, capsys):
    import tarfile

    samples = img2dataset_samples(["a goldfish in a bowl", "a tabby", "nothing", "the volcano"])
    samples.append({"key": "000000004", "txt": "a lion without its image"})
    write_webdataset(tmp_path / "wds" / "00000.tar", samples)
    out = tmp_path / "out"
    rc, err = match(capsys, f"webdataset:{tmp_path / 'wds'}", out, "--num-shards", "2", "--keep-column", "status")
    assert rc == 0, err
    rep = report(out)
    assert rep["rows"]["outcomes"] == {"written": 3, "no_class": 1, "no_image_member": 1}
    sizes = json.loads((out / "shards" / "sizes.json").read_text())
    assert sorted(sizes) == ["00000.tar", "00001.tar"] and sum(sizes.values()) == 3
    members = {}
    for name in sizes:
        with tarfile.open(out / "shards" / name) as tf:
            members.update({m.name: tf.extractfile(m).read() for m in tf.getmembers()})
    assert members["000000000.jpg"] == samples[0]["jpg"]  # the image bytes as they came
    assert members["000000001.txt"] == b"a tabby" and members["000000001.cls"] == str(wnid_to_label()["n02123045"]).encode()
    meta = json.loads(members["000000003.json"])
    assert meta == {"key": "000000003", "source_shard": "00000.tar", "url": "https://img.example/000000003.jpg",
                    "wnid": "n09472597", "terms": ["volcano"], "status": "success"}  # fmt: skip
    assert {r["key"] for r in rows_of(out)} == {"000000000", "000000001", "000000003"}
    assert pa.types.is_string(pq.read_schema(out / "matches" / "00000.parquet").field("source_shard").type)


def test_no_class_captions_only(tmp_path, capsys):
    path = write_parquet(tmp_path / "n.parquet", {"caption": NO_CLASS})
    out = tmp_path / "out"
    rc, err = match(capsys, f"parquet:{path}", out, "--num-shards", "3")
    assert rc == 0, err
    assert sorted(p.name for p in (out / "matches").iterdir()) == ["00000.parquet", "00001.parquet", "00002.parquet"]
    assert rows_of(out) == []


def test_multiple_all_in_a_tar_is_one_sample_per_class_keyed_by_key_and_wnid(tmp_path, capsys):
    import tarfile

    samples = img2dataset_samples(["a goldfish and a tabby", "a lion"])
    write_webdataset(tmp_path / "wds" / "00000.tar", samples)
    out = tmp_path / "out"
    rc, err = match(capsys, f"webdataset:{tmp_path / 'wds'}", out, "--multiple", "all")
    assert rc == 0, err
    with tarfile.open(out / "shards" / "00000.tar") as tf:
        names = [m.name for m in tf.getmembers()]
    stems = sorted({n.rsplit(".", 1)[0] for n in names})
    assert stems == ["000000000_n01443537", "000000000_n02123045", "000000001_n02129165"]
    assert json.loads((out / "shards" / "sizes.json").read_text()) == {"00000.tar": 3}
    assert report(out)["rows"]["outcomes"] == {"written": 2} and report(out)["pairs"]["outcomes"] == {"written": 3}


@pytest.mark.parametrize("kept", ["wnid", "caption", "URL"])
def test_a_kept_column_that_would_shadow_an_output_column_is_one_line(tmp_path, capsys, kept):
    """``--keep-column`` of an output column (or of the corpus's caption or URL column) would give the
    output two columns of one name: refused before anything is written."""
    path = write_parquet(tmp_path / "web-00.parquet", {"caption": ["a goldfish"], "URL": ["https://x/0"], "wnid": ["x"]})
    out = tmp_path / "out"
    rc, err = match(capsys, f"parquet:{path}", out, "--keep-column", kept)
    assert rc == 2 and f"--keep-column {kept}: the output has its own {kept} column" in err, err
    assert not out.exists()
