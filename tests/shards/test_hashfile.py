"""``HashingFile`` and ``HashingReader`` take any buffer (what io's buffered layers hand them) and hash
exactly the file's bytes, whatever the pattern of writes, reads and seeks."""

from __future__ import annotations

import array
import hashlib
import io
import os
import random

from imagenet_captions.shards.hashfile import HashingFile, HashingReader


def test_writes_of_any_buffer_hash_and_store_the_bytes(tmp_path):
    data = os.urandom(5000)
    out = HashingFile(str(tmp_path / "f"))
    out.write(data[:1000])
    out.write(bytearray(data[1000:2000]))
    out.write(memoryview(data)[2000:3000])
    out.write(array.array("i", data[3000:5000]))  # an item size of 4: still counted in bytes
    with io.BufferedWriter(out, 64) as f:  # the Parquet writer's path: many small writes, gathered
        f.write(b"")
    out.commit()
    assert (tmp_path / "f").read_bytes() == data
    assert out.size == 5000 and out.sha256 == hashlib.sha256(data).hexdigest()


def test_reads_in_any_order_hash_the_whole_file_once(tmp_path):
    rng = random.Random(7)
    data = os.urandom(50_000)
    (tmp_path / "f").write_bytes(data)
    for _ in range(20):
        with open(tmp_path / "f", "rb") as raw:
            reader = HashingReader(raw, chunk=1000)
            for _ in range(30):
                pos = rng.randrange(len(data) + 10)
                size = rng.choice([0, 1, 511, 512, 4096])
                reader.seek(pos)
                buffer = bytearray(size) if rng.random() < 0.5 else memoryview(bytearray(size))
                n = reader.readinto(buffer)
                assert bytes(buffer[:n]) == data[pos : pos + size]
            assert reader.finish() == (hashlib.sha256(data).hexdigest(), len(data))
