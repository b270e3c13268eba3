"""The hand-rolled tar writer must write exactly what tarfile writes, so every tar reader reads it."""

import errno
import io
import os
import random
import tarfile

import pytest
import webdataset as wds

from imagenet_captions.shards.layout import TAR_MODE, TAR_MTIME
from imagenet_captions.shards.writer import TarWriter


def _tarfile_bytes(path, members):
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), TAR_MTIME, TAR_MODE
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tf.addfile(info, io.BytesIO(data))
    return path.read_bytes()


def _ours(path, members, per_sample=1):
    with TarWriter(str(path)) as tw:
        for i, (name, data) in enumerate(members):
            tw.add(name, data)
            if (i + 1) % per_sample == 0:
                tw.flush()
    return path.read_bytes()


@pytest.mark.parametrize("per_sample", [1, 4])
def test_bytes_match_tarfile(tmp_path, per_sample):
    rng = random.Random(5)
    sizes = [0, 1, 511, 512, 513, 10239, 10240, 100_000]
    members = [
        (f"n01440764_{i}.{ext}", os.urandom(rng.choice(sizes)))
        for i in range(25)
        for ext in ("jpg", "txt", "json", "cls")
    ]
    members += [
        ("caf\u00e9_1.txt", b"x"),
        ("a" * 99, b"y"),
        ("d" * 60 + "/" + "b" * 60, b"long name: tarfile's rules"),
    ]
    assert _ours(tmp_path / "a.tar", members, per_sample) == _tarfile_bytes(tmp_path / "b.tar", members)


@pytest.mark.parametrize("count", [0, 1, 19])
def test_archive_end_is_padded_like_tarfile(tmp_path, count):
    members = [(f"k_{i}.cls", b"7") for i in range(count)]
    ours = _ours(tmp_path / "a.tar", members)
    assert ours == _tarfile_bytes(tmp_path / "b.tar", members) and len(ours) % tarfile.RECORDSIZE == 0


def test_webdataset_reads_it(tmp_path):
    with TarWriter(str(tmp_path / "s.tar")) as tw:
        for i in range(3):
            tw.add(f"n01440764_{i}.txt", f"caption {i}".encode())
            tw.add(f"n01440764_{i}.cls", str(i).encode())
            tw.flush()
    samples = list(wds.WebDataset(str(tmp_path / "s.tar"), shardshuffle=False))
    assert [(s["__key__"], s["txt"], s["cls"]) for s in samples] == [
        (f"n01440764_{i}", f"caption {i}".encode(), str(i).encode()) for i in range(3)
    ]


def _source(tmp_path, data):
    path = tmp_path / "src.bin"
    path.write_bytes(data)
    return os.open(path, os.O_RDONLY)


@pytest.mark.parametrize("offset", [0, 700])
def test_kernel_copy_writes_the_same_bytes_as_add(tmp_path, offset):
    data = os.urandom(offset + 70_001)
    fd = _source(tmp_path, data)
    try:
        with TarWriter(str(tmp_path / "a.tar")) as tw:
            tw.add("k_0.txt", b"before")
            tw.add_copy("k_1.jpg", fd, offset, 70_001)
            tw.add("k_1.cls", b"3")
            tw.flush()
    finally:
        os.close(fd)
    members = [("k_0.txt", b"before"), ("k_1.jpg", data[offset:]), ("k_1.cls", b"3")]
    assert (tmp_path / "a.tar").read_bytes() == _tarfile_bytes(tmp_path / "b.tar", members)


def test_a_source_shorter_than_promised_is_cut_back_out(tmp_path):
    fd = _source(tmp_path, b"x" * 1000)
    try:
        with TarWriter(str(tmp_path / "a.tar")) as tw:
            tw.add("k_0.txt", b"kept")
            tw.flush()
            with pytest.raises(OSError, match="short read"):
                tw.add_copy("k_1.jpg", fd, 0, 5000)
            tw.add("k_2.txt", b"after")
            tw.flush()
    finally:
        os.close(fd)
    members = [("k_0.txt", b"kept"), ("k_2.txt", b"after")]
    assert (tmp_path / "a.tar").read_bytes() == _tarfile_bytes(tmp_path / "b.tar", members)


def test_copy_falls_back_where_the_kernel_refuses(tmp_path, monkeypatch):
    def refuse(*args):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", refuse)
    data = os.urandom(3 * (1 << 20) + 5)
    fd = _source(tmp_path, data)
    try:
        with TarWriter(str(tmp_path / "a.tar")) as tw:
            tw.add_copy("k_1.jpg", fd, 0, len(data))
            tw.flush()
    finally:
        os.close(fd)
    assert (tmp_path / "a.tar").read_bytes() == _tarfile_bytes(tmp_path / "b.tar", [("k_1.jpg", data)])
