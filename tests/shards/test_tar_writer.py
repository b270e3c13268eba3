"""The hand-rolled tar writer must write exactly what tarfile writes, so every tar reader reads it."""

import io
import os
import random
import tarfile

import pytest
import webdataset as wds

from imagenet_captions.layout import TAR_MODE, TAR_MTIME
from imagenet_captions.shards.hashfile import HashingFile
from imagenet_captions.shards.tar import TarWriter


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
    out = HashingFile(str(path))
    with TarWriter(out) as tw:
        for i, (name, data) in enumerate(members):
            tw.add(name, data)
            if (i + 1) % per_sample == 0:
                tw.flush()
    out.commit()
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
    out = HashingFile(str(tmp_path / "s.tar"))
    with TarWriter(out) as tw:
        for i in range(3):
            tw.add(f"n01440764_{i}.txt", f"caption {i}".encode())
            tw.add(f"n01440764_{i}.cls", str(i).encode())
            tw.flush()
    out.commit()
    samples = list(wds.WebDataset(str(tmp_path / "s.tar"), shardshuffle=False))
    assert [(s["__key__"], s["txt"], s["cls"]) for s in samples] == [
        (f"n01440764_{i}", f"caption {i}".encode(), str(i).encode()) for i in range(3)
    ]
