"""One writer per format: ``write_shard`` writes its tar and Parquet file through ``shards.tar.write_tar``
and ``shards.parquet.write_parquet``, which another sample source (``match``) calls to get the same
bytes; a failure leaves no file. A text-release sample's digest keeps the form it had when the
expected image rode inside the record, so a rebuild made before stays current."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image
from shardsamples import record

from imagenet_captions import schema
from imagenet_captions.records import ExpectedImage, ImageRef, Sample
from imagenet_captions.shards.parquet import write_parquet
from imagenet_captions.shards.tar import TarSample, write_tar
from imagenet_captions.shards.writer import samples_digest, write_shard


def _ref(tmp_path: Path, key: str, colour: tuple[int, int, int]) -> ImageRef:
    path = tmp_path / f"{key}.JPEG"
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buf, "JPEG")
    path.write_bytes(buf.getvalue())
    return {"key": key, "wnid": key[:9], "path": str(path), "offset": None, "size": None}


def _samples_of(tar: Path) -> list[TarSample]:
    """The tar's samples, read back with tarfile: each key's members by extension, in their order."""
    samples: list[TarSample] = []
    with tarfile.open(tar) as tf:
        for member in tf.getmembers():
            key, ext = member.name.split(".", 1)
            data = tf.extractfile(member).read()  # type: ignore[union-attr]  # a regular member
            if not samples or samples[-1].key != key:
                samples.append(TarSample(key, {}))
            samples[-1].members[ext] = data  # type: ignore[index]  # built here, a dict
    return samples


def test_another_sample_source_writes_the_builds_tar_and_parquet_bytes_by_calling_the_same_writers(tmp_path):
    samples = [
        Sample(record(f"n01440764_{i}", label=3), _ref(tmp_path, f"n01440764_{i}", (i * 30, 9, 90)))
        for i in range(7)
    ]
    result = write_shard(4, samples, str(tmp_path / "build"))
    built = tmp_path / "build"
    again = write_tar(str(tmp_path / "again.tar"), _samples_of(built / "00004.tar"))
    again.commit()
    assert (tmp_path / "again.tar").read_bytes() == (built / "00004.tar").read_bytes()
    assert again.sha256 == result.sha256["00004.tar"] and again.size == result.sizes["00004.tar"]
    rows = pq.read_table(built / "00004.parquet").to_pylist()
    parquet = write_parquet(str(tmp_path / "again.parquet"), schema.to_table(rows))
    parquet.commit()
    assert (tmp_path / "again.parquet").read_bytes() == (built / "00004.parquet").read_bytes()


def test_members_are_written_by_extension_in_the_order_given(tmp_path):
    out = write_tar(
        str(tmp_path / "s.tar"), [TarSample("k_1", {"png": b"p", "txt": b"t"}), TarSample("k_0", {"x": b""})]
    )
    out.commit()
    with tarfile.open(tmp_path / "s.tar") as tf:
        assert tf.getnames() == ["k_1.png", "k_1.txt", "k_0.x"]


def test_a_failing_sample_source_leaves_no_file(tmp_path):
    def samples():
        yield TarSample("k_1", {"txt": b"t" * 10_000})
        raise RuntimeError("the source failed")

    with pytest.raises(RuntimeError, match="source failed"):
        write_tar(str(tmp_path / "s.tar"), samples())
    assert os.listdir(tmp_path) == []


def test_a_parquet_write_that_fails_leaves_no_file(tmp_path):
    table = schema.to_table([])
    with pytest.raises(AttributeError):  # pyarrow fails inside the write, once the file exists
        write_parquet(str(tmp_path / "s.parquet"), "not a table")  # type: ignore[arg-type]  # under test
    assert os.listdir(tmp_path) == []
    write_parquet(str(tmp_path / "s.parquet"), table).commit()
    assert pq.read_table(tmp_path / "s.parquet").num_rows == 0


def test_a_text_release_samples_digest_has_the_form_it_had_with_expect_inside_the_record():
    """Recorded digests of rebuilds made before the expected image left the record: still equal."""
    ref: ImageRef = {
        "key": "n01440764_1",
        "wnid": "n01440764",
        "path": "/i/n01440764_1.JPEG",
        "offset": None,
        "size": 9,
    }
    expected = ExpectedImage("c0ffee" * 10 + "abcd", 1234)
    options = {"image": {"resize": None}, "version": "0.1.0"}
    old_record = {
        **record("n01440764_1"),
        "expect": {"image_sha256": expected.sha256, "image_size": expected.size},
    }
    h = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    h.update(
        json.dumps([old_record, ref], sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    )
    h.update(b"\n")
    assert samples_digest([Sample(record("n01440764_1"), ref, expected)], options) == h.hexdigest()
    plain = samples_digest([Sample(record("n01440764_1"), ref)], options)
    assert plain != h.hexdigest()  # the expected image is part of a shard's inputs
