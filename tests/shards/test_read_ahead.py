"""The shard writer reads images ahead on threads: same bytes, same order, bounded memory."""

import hashlib
import io
import random
import threading
import time

import pytest
from PIL import Image
from shardsamples import record

from imagenet_captions.images import ImageOptions
from imagenet_captions.records import Sample
from imagenet_captions.shards.images import read_ahead
from imagenet_captions.shards.tar import to_json_bytes
from imagenet_captions.shards.writer import write_shard


def test_read_ahead_keeps_order_and_bounds_the_window():
    lock = threading.Lock()
    started, consumed, widest = [0], [0], [0]
    rng = random.Random(0)
    delays = [rng.random() / 500 for _ in range(200)]

    def fn(i):
        with lock:
            started[0] += 1
            widest[0] = max(widest[0], started[0] - consumed[0])
        time.sleep(delays[i])
        return i * i

    out = []
    for value in read_ahead(fn, list(range(200)), threads=3, ahead=8):
        out.append(value)
        with lock:
            consumed[0] += 1
    assert out == [i * i for i in range(200)]
    assert 1 < widest[0] <= 9  # never more than `ahead` items in flight beyond the one being consumed


def test_read_ahead_inline_and_errors_propagate():
    assert list(read_ahead(str, [1, 2, 3], threads=0)) == ["1", "2", "3"]

    def boom(i):
        if i == 5:
            raise ValueError("five")
        return i

    with pytest.raises(ValueError, match="five"):
        list(read_ahead(boom, list(range(20)), threads=2, ahead=4))


def _images(tmp_path, n):
    rng = random.Random(1)
    samples = []
    for i in range(n):
        key = f"n01440764_{i}"
        path = tmp_path / f"{key}.JPEG"
        buf = io.BytesIO()
        Image.new("RGB", (64 + i % 7, 48), (rng.randrange(256), 40, 90)).save(buf, "JPEG")
        data = buf.getvalue()
        if i % 9 == 4:
            data = data[: len(data) // 2]  # truncated: dropped with a reason, in place
        path.write_bytes(data)
        samples.append(
            Sample(record(key), {"key": key, "wnid": "n01440764", "path": str(path), "offset": None, "size": None})
        )
    return samples


@pytest.mark.parametrize("resize", [None, 32])
def test_threads_do_not_change_the_shard(tmp_path, resize):
    samples = _images(tmp_path, 40)
    options = ImageOptions(resize=resize)
    digests, dropped = [], []
    for threads in (0, 1, 4):
        out = tmp_path / f"out{threads}"
        result = write_shard(0, samples, str(out), options, threads=threads)
        digests.append([hashlib.sha256((out / f).read_bytes()).hexdigest() for f in result.files])
        dropped.append(result.dropped)
    assert digests[0] == digests[1] == digests[2]
    assert dropped[0] == dropped[1] == dropped[2] and len(dropped[0]) == 4
    assert {reason for _, reason, _ in dropped[0]} == {"corrupt_image"}


def test_json_bytes_are_canonical():
    a = to_json_bytes({"b": 1, "a": "é", "n": None})
    assert a == to_json_bytes({"n": None, "a": "é", "b": 1}) == '{"a":"é","b":1,"n":null}'.encode()
    assert to_json_bytes({"big": 2**70}) == b'{"big":1180591620717411303424}'  # beyond orjson: stdlib


def test_threads_only_where_there_is_work_to_overlap():
    from imagenet_captions.shards.images import READ_THREADS, auto_threads

    def ref(path):
        return {"key": "n01440764_1", "wnid": "n01440764", "path": path, "offset": None, "size": None}

    local = [Sample(record("n01440764_1"), ref("/data/k.JPEG"))]
    remote = [Sample(record("n01440764_1"), ref("gs://bucket/train/k.JPEG"))]
    assert auto_threads(local, ImageOptions()) == 0
    assert auto_threads(local, ImageOptions(resize=256)) == READ_THREADS >= 1
    assert auto_threads(remote, ImageOptions()) == READ_THREADS
