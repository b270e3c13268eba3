"""The corpus readers of ``match``, without Beam: keys, columns, per-entry drops, and what makes a
whole corpus unusable (one UsageError before anything is read)."""

from __future__ import annotations

import gzip
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from corpus_helpers import (
    img2dataset_samples,
    jpeg,
    odd_captions,
    write_jsonl,
    write_parquet,
    write_webdataset,
)

from imagenet_captions.errors import UsageError
from imagenet_captions.match.corpora import Batch, FileDigest, ReadOptions, sanitize_stem
from imagenet_captions.match.readers import open_corpus


def _read_all(corpus, n_parts: int = 1) -> tuple[list[Batch], list[FileDigest]]:
    batches, digests = [], []
    for part in corpus.parts(n_parts):
        for item in corpus.read(part):
            (digests if isinstance(item, FileDigest) else batches).append(item)
    return batches, digests


def _rows(batches: list[Batch]) -> list[tuple[str, str | None]]:
    return [(b.key(i), c) for b in batches for i, c in enumerate(b.captions)]


def _drops(batches: list[Batch]) -> list[tuple[str, str]]:
    return [(d.reason, d.key) for b in batches for d in b.drops]


# ---------------------------------------------------------------------------------------------------
# parquet:
# ---------------------------------------------------------------------------------------------------


def test_parquet_keys_are_the_sanitised_stem_and_the_row_index_across_row_groups_and_parts(tmp_path):
    captions = [f"caption {i}" for i in range(25)]
    path = write_parquet(tmp_path / "laion part.v2.parquet", {"TEXT": captions, "URL": ["u"] * 25}, row_group_size=4)
    corpus = open_corpus(f"parquet:{path}")
    assert corpus.rows() == 25 and [f.rows for f in corpus.files] == [25]
    assert sanitize_stem(str(path)) == "laion_part_v2"
    for parts in (1, 3, 7):
        batches, _ = _read_all(corpus, parts)
        assert _rows(batches) == [(f"laion_part_v2_{i:09d}", f"caption {i}") for i in range(25)]
    batches, _ = _read_all(corpus)
    assert corpus.schema.names == ["url"] and batches[0].columns.column("url").to_pylist()[:2] == ["u", "u"]


def test_parquet_default_columns_key_column_and_kept_columns(tmp_path):
    path = write_parquet(
        tmp_path / "c.parquet",
        {
            "txt": ["a", "b"],
            "caption": ["first", None],
            "url": ["https://x/1", "https://x/2"],
            "uid": ["k1", "k2"],
            "width": pa.array([640, 480], pa.int32()),
            "license": pa.array(["cc", "cc0"]).dictionary_encode(),
        },
    )
    corpus = open_corpus(f"parquet:{path}", ReadOptions(key_column="uid", keep_columns=("width", "license")))
    assert corpus.text_column == "caption"  # the first of caption, TEXT, text, txt that the file has
    batches, _ = _read_all(corpus)
    assert _rows(batches) == [("k1", "first"), ("k2", None)]
    cols = batches[0].columns
    assert cols.column_names == ["url", "width", "license"]
    assert cols.column("license").type == pa.string() and cols.column("license").to_pylist() == ["cc", "cc0"]
    assert cols.column("width").to_pylist() == [640, 480]


def test_parquet_binary_captions_not_utf8_and_missing_keys_are_drops(tmp_path):
    path = write_parquet(
        tmp_path / "b.parquet",
        {"caption": pa.array([b"ok", b"\xff\xfe bad", None, b"fine"], pa.binary()), "k": ["a", "b", "c", None]},
    )
    batches, _ = _read_all(open_corpus(f"parquet:{path}", ReadOptions(key_column="k")))
    assert _rows(batches) == [("a", "ok"), ("c", None)]
    assert sorted(r for r, _ in _drops(batches)) == ["bad_key", "caption_not_text"]
    assert sum(b.rows for b in batches) == 4


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "matches no file"),
        (lambda p: write_parquet(p / "a.parquet", {"alt": ["x"]}), "none of the caption columns"),
        (lambda p: (p / "a.parquet").write_bytes(b"PAR1 this is not parquet PAR1"), "not readable Parquet"),
        (lambda p: write_parquet(p / "a.parquet", {"caption": [1, 2]}), "is int64, not text"),
    ],
)
def test_parquet_whole_corpus_errors(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(UsageError, match=message):
        open_corpus(f"parquet:{tmp_path}/*.parquet")


def test_parquet_second_file_without_the_caption_column_and_colliding_stems(tmp_path):
    write_parquet(tmp_path / "a" / "x.parquet", {"caption": ["a"]})
    write_parquet(tmp_path / "b" / "x.parquet", {"caption": ["b"]})
    with pytest.raises(UsageError, match="same keys"):
        open_corpus(f"parquet:{tmp_path}/*/x.parquet")
    open_corpus(f"parquet:{tmp_path}/*/x.parquet", ReadOptions(key_column="caption"))  # keys given: no clash
    write_parquet(tmp_path / "c" / "y.parquet", {"TEXT": ["c"]})
    with pytest.raises(UsageError, match="y.parquet has no caption column 'caption'"):
        open_corpus(f"parquet:{tmp_path}/[ac]/*.parquet")


def test_a_truncated_parquet_footer_is_a_whole_corpus_error(tmp_path):
    path = write_parquet(tmp_path / "t.parquet", {"caption": ["a"] * 100})
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(UsageError, match="t.parquet is not readable Parquet"):
        open_corpus(f"parquet:{path}")


def test_unknown_kind_is_a_usage_error():
    with pytest.raises(UsageError, match="KIND one of parquet, webdataset, jsonl"):
        open_corpus("csv:/tmp/x.csv")


# ---------------------------------------------------------------------------------------------------
# jsonl:
# ---------------------------------------------------------------------------------------------------


def test_jsonl_rows_keys_and_per_line_drops(tmp_path):
    path = write_jsonl(
        tmp_path / "yfcc.jsonl",
        [
            {"caption": "a lion", "url": "https://a"},
            "{not json",
            "[1, 2]",
            {"caption": 42},
            "",  # a blank line is a row, and a bad one
            {"text": "no caption field named caption"},
            {"caption": None, "tag": {"a": 1}},
        ],
    )
    corpus = open_corpus(f"jsonl:{path}", ReadOptions(keep_columns=("tag",)))
    batches, digests = _read_all(corpus)
    assert _rows(batches) == [("yfcc_000000000", "a lion"), ("yfcc_000000005", None), ("yfcc_000000006", None)]
    assert _drops(batches) == [
        ("bad_json", "yfcc_000000001"),
        ("bad_json", "yfcc_000000002"),
        ("caption_not_text", "yfcc_000000003"),
        ("bad_json", "yfcc_000000004"),
    ]
    assert sum(b.rows for b in batches) == 7  # the final newline starts no row
    assert batches[0].columns.column("tag").to_pylist() == [None, None, '{"a":1}']
    assert digests[0].size == path.stat().st_size


def test_jsonl_gzip_and_key_field(tmp_path):
    raw = b'{"caption": "a", "id": 7}\n{"caption": "b"}\n'
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(gzip.compress(raw))
    batches, _ = _read_all(open_corpus(f"jsonl:{path}", ReadOptions(key_column="id")))
    assert _rows(batches) == [("7", "a")] and _drops(batches) == [("bad_key", "c_000000001")]


# ---------------------------------------------------------------------------------------------------
# webdataset:
# ---------------------------------------------------------------------------------------------------


def test_webdataset_samples_captions_urls_and_image_references(tmp_path):
    samples = img2dataset_samples(["a lion", "a tabby"])
    samples.append({"key": "000000002", "jpg": jpeg(), "json": {"caption": "from json", "url": "u2"}})
    samples.append({"key": "000000003", "txt": "no image"})
    samples.append({"key": "000000004", "jpg": jpeg(), "txt": b"\xff\xfe", "json": {"url": "u4"}})
    samples.append({"key": "000000005", "jpg": jpeg(), "json": b"{broken"})
    samples.append({"key": "000000006", "png": b"\x89PNG...", "json": {"caption": 3}})
    samples.append({"key": "000000007", "jpg": jpeg(), "json": {"url": "no caption"}})
    path = write_webdataset(tmp_path / "00000.tar", samples)
    corpus = open_corpus(f"webdataset:{tmp_path}")
    batches, digests = _read_all(corpus)
    assert _rows(batches) == [("000000000", "a lion"), ("000000001", "a tabby"), ("000000002", "from json"),
                              ("000000007", None)]  # fmt: skip
    assert sorted(_drops(batches)) == [
        ("bad_json", "000000005"),
        ("caption_not_text", "000000004"),
        ("caption_not_text", "000000006"),
        ("no_image_member", "000000003"),
    ]
    cols = batches[0].columns
    assert cols.column("url").to_pylist() == ["https://img.example/000000000.jpg", "https://img.example/000000001.jpg", "u2", "no caption"]
    assert set(cols.column("source_shard").to_pylist()) == {"00000.tar"}
    data = path.read_bytes()
    offset, size = cols.column("__image_offset")[1].as_py(), cols.column("__image_size")[1].as_py()
    assert data[offset : offset + size] == samples[1]["jpg"]
    assert digests == [FileDigest(0, __import__("hashlib").sha256(data).hexdigest(), len(data))]


def test_a_truncated_tar_drops_the_sample_at_the_break(tmp_path):
    write_webdataset(tmp_path / "cut.tar", img2dataset_samples(["a", "b", "c"]), end=False)
    batches, _ = _read_all(open_corpus(f"webdataset:{tmp_path / 'cut.tar'}"))
    assert [k for k, _ in _rows(batches)] == ["000000000", "000000001"]
    assert _drops(batches) == [("truncated_tar", "000000002")]


def test_a_file_that_is_not_a_tar_is_a_whole_corpus_error(tmp_path):
    (tmp_path / "x.tar").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(UsageError, match="x.tar is not a tar"):
        open_corpus(f"webdataset:{tmp_path / 'x.tar'}")


def test_webdataset_members_of_a_tar_without_its_end_blocks(tmp_path):
    path = write_webdataset(tmp_path / "noend.tar", img2dataset_samples(["a", "b"]))
    with tarfile.open(path) as tf:
        last = tf.getmembers()[-1]
    cut = last.offset_data + last.size + (-last.size % 512)
    path.write_bytes(path.read_bytes()[:cut])  # whole members, but no end-of-archive blocks
    batches, _ = _read_all(open_corpus(f"webdataset:{path}"))
    assert [k for k, _ in _rows(batches)] == ["000000000"] and _drops(batches) == [("truncated_tar", "000000001")]


def test_release_kinds_take_no_column_options(tmp_path):
    with pytest.raises(UsageError, match="takes no --text-column"):
        open_corpus(f"release:{tmp_path}/x.json", ReadOptions(text_column="x"))


def test_the_real_laion_sample_reads_as_laion_ships_it():
    from corpus_helpers import REAL_SAMPLE

    corpus = open_corpus(f"parquet:{REAL_SAMPLE}")
    assert corpus.text_column == "TEXT" and corpus.url_column == "URL"
    batches, _ = _read_all(corpus)
    expected = pq.read_table(REAL_SAMPLE).column("TEXT").to_pylist()
    assert [c for _, c in _rows(batches)] == expected


def test_odd_captions_arrive_unchanged(tmp_path):
    captions = odd_captions()
    path = write_parquet(tmp_path / "odd.parquet", {"caption": captions})
    batches, _ = _read_all(open_corpus(f"parquet:{path}"))
    assert [c for _, c in _rows(batches)] == captions
