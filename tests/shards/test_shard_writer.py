import io
import json
import tarfile

import pyarrow.parquet as pq
import pytest
from PIL import Image
from shardsamples import record

from imagenet_captions import layout
from imagenet_captions.records import Sample
from imagenet_captions.shards.writer import DuplicateKeyError, samples_digest, write_shard


def _jpeg(tmp_path, name, colour=(200, 10, 10)):
    path = tmp_path / name
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), colour).save(buf, "JPEG")
    path.write_bytes(buf.getvalue())
    return {"key": name.split(".")[0], "wnid": name[:9], "path": str(path), "offset": None, "size": None}


def test_tar_and_parquet_hold_the_same_rows_in_hash_order(tmp_path):
    keys = [f"n01440764_{i}" for i in range(20)]
    samples = [Sample(record(k), _jpeg(tmp_path, f"{k}.JPEG")) for k in keys]
    samples.append(
        Sample(
            record("n01440764_99"),
            {
                "key": "n01440764_99",
                "wnid": "n01440764",
                "path": str(tmp_path / "gone.JPEG"),
                "offset": None,
                "size": None,
            },
        )
    )
    (tmp_path / "bad.JPEG").write_bytes(b"\xff\xd8\xff\xe0 not really")
    samples.append(
        Sample(record("n01440764_98"), {**_jpeg(tmp_path, "x.JPEG"), "path": str(tmp_path / "bad.JPEG")})
    )
    out = tmp_path / "out"
    result = write_shard(3, list(reversed(samples)), str(out))
    assert result.written == 20 and result.files == ["00003.tar", "00003.parquet"]
    assert sorted(r[:2] for r in result.dropped) == [
        ("n01440764_98", "corrupt_image"),
        ("n01440764_99", "unreadable_image"),
    ]
    with tarfile.open(out / "00003.tar") as tf:
        members = tf.getmembers()
    assert {m.mtime for m in members} == {layout.TAR_MTIME} and {m.uid for m in members} == {0}
    tar_keys = [m.name.split(".")[0] for m in members[::4]]
    assert [m.name.split(".", 1)[1] for m in members[:4]] == ["jpg", "txt", "json", "cls"]
    assert tar_keys == sorted(keys, key=layout.order_key)
    table = pq.read_table(out / "00003.parquet")
    assert table.column("key").to_pylist() == tar_keys
    assert table.column("image_action").to_pylist() == ["kept"] * 20
    assert not list(out.glob("*.tmp"))


def test_same_samples_in_any_order_give_identical_bytes(tmp_path):
    samples = [Sample(record(f"n01440764_{i}"), _jpeg(tmp_path, f"n01440764_{i}.JPEG")) for i in range(10)]
    write_shard(0, samples, str(tmp_path / "a"))
    write_shard(0, samples[::-1], str(tmp_path / "b"))
    for name in ("00000.tar", "00000.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_duplicate_key_fails(tmp_path):
    s = Sample(record("n01440764_1"), _jpeg(tmp_path, "n01440764_1.JPEG"))
    with pytest.raises(DuplicateKeyError):
        write_shard(0, [s, s], str(tmp_path / "o"))


def test_text_only_shard_is_parquet_only(tmp_path):
    result = write_shard(1, [Sample(record("n01440764_2")), Sample(record("n01440764_1"))], str(tmp_path))
    assert result.files == ["00001.parquet"] and not list(tmp_path.glob("*.tar"))
    row = pq.read_table(tmp_path / "00001.parquet").to_pylist()[0]
    assert row["tags"] == ["a", "b"] and row["image_format"] is None


def test_json_member_is_therecord(tmp_path):
    write_shard(
        0, [Sample(record("n01440764_5", label=7), _jpeg(tmp_path, "n01440764_5.JPEG"))], str(tmp_path / "o")
    )
    with tarfile.open(tmp_path / "o" / "00000.tar") as tf:
        rec = json.loads(tf.extractfile("n01440764_5.json").read())
        assert tf.extractfile("n01440764_5.cls").read() == b"7"
        assert tf.extractfile("n01440764_5.txt").read().decode() == rec["caption"]
    assert rec["label"] == 7 and rec["jpg_width"] == 32


def test_digest_changes_with_inputs_and_options():
    a = [Sample(record("n01440764_1"), {"path": "p", "size": 3})]
    b = [Sample(record("n01440764_1"), {"path": "p", "size": 4})]
    assert samples_digest(a, {"x": 1}) != samples_digest(b, {"x": 1})
    assert samples_digest(a, {"x": 1}) != samples_digest(a, {"x": 2})
    assert samples_digest(a, {"x": 1}) == samples_digest(list(a), {"x": 1})


def test_shard_assignment_is_stable_and_spread():
    counts = [0] * 16
    for i in range(16000):
        counts[layout.shard_of(f"n01440764_{i}", 16)] += 1
    assert min(counts) > 850 and max(counts) < 1150
    assert layout.shard_of("n01440764_10026", 16) == layout.shard_of("n01440764_10026", 16)


@pytest.mark.parametrize(
    ("count", "size", "min_shards", "expected"),
    [
        (0, 2000, 8, 1),
        (100, 2000, 8, 3),
        (300, 2000, 8, 8),
        (1_281_167, 2000, 8, 641),
        (448_896, 2000, 64, 225),
    ],
)
def test_derive_num_shards(count, size, min_shards, expected):
    assert layout.derive_num_shards(count, size, min_shards) == expected
