"""The one atomic writer: whole file or nothing, unique temporary names, durable, no leftovers.

Every output of the project (shards, reports, manifests, the response store's parts, eval results)
goes through ``fsio.atomic_write``, so these properties are tested once, here, for local paths and
for an object store (``imagenet_captions.testing.object_store``: ``testfs://``, backed by a local folder).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imagenet_captions import fsio
from imagenet_captions.testing import object_store

PREFIX = object_store.PREFIX


class Boom(Exception):
    pass


@pytest.fixture(params=["local", "remote"])
def base(request, tmp_path: Path) -> str:
    return str(tmp_path) if request.param == "local" else PREFIX + str(tmp_path)


def test_temp_names_are_unique_siblings_ending_in_tmp(tmp_path: Path) -> None:
    target = str(tmp_path / "00001.tar")
    names = {fsio.temp_path(target) for _ in range(200)}
    assert len(names) == 200
    for name in names:
        assert name.startswith(target + ".") and name.endswith(".tmp") and fsio.is_temp(os.path.basename(name))
        assert f".{os.getpid()}-" in name
    assert not fsio.is_temp("00001.tar") and fsio.is_temp("00001.tar.tmp")


def test_success_writes_the_whole_file_and_leaves_no_temp(base: str, tmp_path: Path) -> None:
    path = fsio.join(base, "out.bin")
    with fsio.atomic_write(path) as f:
        f.write(b"a" * 1000)
        assert os.listdir(tmp_path) != ["out.bin"]  # nothing under the final name while writing
        assert not (tmp_path / "out.bin").exists()
    assert (tmp_path / "out.bin").read_bytes() == b"a" * 1000
    assert os.listdir(tmp_path) == ["out.bin"]


def test_an_exception_leaves_the_old_file_whole_and_no_temp(base: str, tmp_path: Path) -> None:
    (tmp_path / "out.json").write_bytes(b"old")
    with pytest.raises(Boom), fsio.atomic_write(fsio.join(base, "out.json")) as f:
        f.write(b"new, but only half of it")
        raise Boom
    assert (tmp_path / "out.json").read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.json"]


def test_an_exception_on_a_new_file_leaves_nothing(base: str, tmp_path: Path) -> None:
    with pytest.raises(Boom), fsio.atomic_write(fsio.join(base, "new.bin")) as f:
        f.write(b"x" * 100)
        raise Boom
    assert os.listdir(tmp_path) == []


# Run in a new user and mount namespace (``unshare -rm``) on a 64 KiB tmpfs: writes 256 KiB through
# atomic_write in small pieces, so the disk fills while bytes still sit in the buffer and the close()
# of the error path flushes again, and raises again. Prints the error's errno and what is left.
_FULL_DISK_WRITER = """
import json, os, sys
from imagenet_captions import fsio
from imagenet_captions.testing import object_store
folder, base = sys.argv[1], sys.argv[2]
errno = None
try:
    with fsio.atomic_write(fsio.join(base, "out.bin")) as f:
        for _ in range(64):
            f.write(b"x" * 4096)
except OSError as e:
    errno = e.errno
print(json.dumps({"errno": errno, "left": sorted(os.listdir(folder))}))
"""


def _mount_namespace_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(
    not _mount_namespace_works(), reason="needs `unshare -rm` (a user and mount namespace) to mount a tmpfs"
)
@pytest.mark.parametrize("where", ["local", "remote"])
def test_a_full_disk_leaves_no_temporary_file(where: str, tmp_path: Path) -> None:
    """The error path's close() flushes the buffered bytes again and raises ENOSPC again; the
    temporary file must be removed all the same (a rerun would otherwise find litter in --out)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    base = str(mnt) if where == "local" else PREFIX + str(mnt)
    script = 'mount -t tmpfs -o size=64k tmpfs "$1" || exit 90\n"$2" -c "$3" "$1" "$4"\n'
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", str(mnt), sys.executable, _FULL_DISK_WRITER, base],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode == 90:
        pytest.skip(f"mount -t tmpfs refused here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result == {"errno": 28, "left": []}  # ENOSPC reported, and nothing left behind


def test_interleaved_writers_of_one_path_both_succeed(base: str, tmp_path: Path) -> None:
    """Two runs writing the same output: with one shared temporary name, the second would truncate
    the first's file and the first rename would fail (``FileNotFoundError: ...tmp -> ...``)."""
    path = fsio.join(base, "report.json")
    with fsio.atomic_write(path) as first:
        first.write(b"first " * 100)
        with fsio.atomic_write(path) as second:
            second.write(b"second " * 100)
        assert (tmp_path / "report.json").read_bytes() == b"second " * 100
        first.write(b"end")
    assert (tmp_path / "report.json").read_bytes() == b"first " * 100 + b"end"
    assert os.listdir(tmp_path) == ["report.json"]


def _write_many(path: str, byte: bytes, times: int) -> None:
    for _ in range(times):
        with fsio.atomic_write(path) as f:
            for _ in range(16):
                f.write(byte * 4096)


def test_concurrent_writers_in_threads_and_processes_leave_one_whole_file(tmp_path: Path) -> None:
    path = str(tmp_path / "shard.tar")
    threads = [threading.Thread(target=_write_many, args=(path, b, 30)) for b in (b"t", b"u")]
    with ProcessPoolExecutor(2) as pool:
        futures = [pool.submit(_write_many, path, b, 30) for b in (b"p", b"q")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for fut in futures:
            fut.result()  # raises if any writer failed
    data = Path(path).read_bytes()
    assert len(data) == 16 * 4096 and data in {b * (16 * 4096) for b in (b"t", b"u", b"p", b"q")}
    assert os.listdir(tmp_path) == ["shard.tar"]


def test_local_writes_fsync_the_file_and_then_its_folder(tmp_path: Path, monkeypatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(fsio.os, "fsync", recording_fsync)
    with fsio.atomic_write(str(tmp_path / "a.bin")) as f:
        f.write(b"x")
    assert synced == ["file", "dir"]


def test_a_relative_path_in_the_working_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with fsio.atomic_write("here.txt") as f:
        f.write(b"ok")
    assert (tmp_path / "here.txt").read_bytes() == b"ok" and os.listdir(tmp_path) == ["here.txt"]


def test_write_json_atomic_bytes(base: str, tmp_path: Path) -> None:
    obj = {"b": [1, 2], "a": "café ü", "n": None}
    fsio.write_json_atomic(fsio.join(base, "r.json"), obj)
    expected = (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    assert (tmp_path / "r.json").read_bytes() == expected
    assert (tmp_path / "r.json").read_text(encoding="utf-8").startswith('{\n  "a": "café ü"')


def test_write_json_atomic_of_something_not_json_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        fsio.write_json_atomic(str(tmp_path / "r.json"), {"a": object()})
    assert os.listdir(tmp_path) == []


def test_write_parquet_atomic_writes_what_pyarrow_writes(base: str, tmp_path: Path) -> None:
    table = pa.table({"key": ["n01440764_1", "n01440764_2"], "label": [0, 0]})
    fsio.write_parquet_atomic(table, fsio.join(base, "p.parquet"), compression="zstd")
    pq.write_table(table, str(tmp_path / "direct.parquet"), compression="zstd")
    assert (tmp_path / "p.parquet").read_bytes() == (tmp_path / "direct.parquet").read_bytes()
    assert pq.read_table(str(tmp_path / "p.parquet")).equals(table)
    assert sorted(os.listdir(tmp_path)) == ["direct.parquet", "p.parquet"]


def test_walk_files_sees_nested_files(base: str, tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    for rel in ("a.tar", "sub/b.tmp", "sub/deeper/c.parquet"):
        (tmp_path / rel).write_bytes(b"")
    assert fsio.walk_files(base) == ["a.tar", "sub/b.tmp", "sub/deeper/c.parquet"]
    assert fsio.isdir(fsio.join(base, "sub")) and not fsio.isdir(fsio.join(base, "nothing"))
