"""A disk that fills up during a build: the build ends with one line naming the file (exit 2), a
shard's files are in place together or not at all, and the rerun, once there is room, finishes it.

The full disk is real: a small tmpfs mounted for the test (the kernel's ENOSPC), where mounting is
allowed (root); everywhere, a file-size limit (``RLIMIT_FSIZE``, the kernel's EFBIG) on a build in
a child process stands in for it.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from imagenet_captions.records import Sample
from imagenet_captions.shards.validate import validate_build
from imagenet_captions.shards.writer import write_shard

PAGE = 4096
NUM_SHARDS = 6


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs of its own, unmounted afterwards."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the RLIMIT_FSIZE test still runs")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _leave_free(disk: Path, free: int) -> Path:
    """Fill ``disk`` until ``free`` bytes (whole pages) are left; returns the filler, to remove later."""
    st = os.statvfs(disk)
    filler = disk / "filler"
    filler.write_bytes(bytes(st.f_bavail * st.f_frsize - free))
    st = os.statvfs(disk)
    assert st.f_bavail * st.f_frsize == free
    return filler


def _pages(n: int) -> int:
    return -(-n // PAGE) * PAGE


def _samples(tmp_path: Path, n: int) -> list[Sample]:
    """(record as the writer receives it, image reference) for ``n`` noisy JPEGs."""
    rng = random.Random(3)
    out = []
    for i in range(n):
        key = f"n01440764_{i}"
        buf = io.BytesIO()
        Image.frombytes("RGB", (48, 32), rng.randbytes(48 * 32 * 3)).save(buf, "JPEG")
        path = tmp_path / f"{key}.JPEG"
        path.write_bytes(buf.getvalue())
        text = {"title": f"title {key}", "description": "", "tags": ["a"], "caption": f"title {key} a"}
        rec = {"key": key, "wnid": "n01440764", "label": 0, "photo_id": None, "license": None, **text}
        ref = {"key": key, "wnid": "n01440764", "path": str(path), "offset": None, "size": None}
        out.append(Sample({**rec, "lang": None, "lang_score": None}, ref))
    return out


def test_a_disk_full_while_the_parquet_file_is_written_leaves_no_file_of_the_shard(
    small_disk: Path, tmp_path: Path
) -> None:
    """Room for the tar and one page: the tar is complete, the Parquet file is not. Before, the tar
    was already under its final name, without its Parquet file, and a traceback ended the build."""
    samples = _samples(tmp_path, 12)
    ref = write_shard(3, samples, str(tmp_path / "ref"))
    assert ref.sizes["00003.parquet"] > PAGE
    _leave_free(small_disk, _pages(ref.sizes["00003.tar"]) + PAGE)
    out = small_disk / "shards"
    out.mkdir()
    with pytest.raises(OSError) as raised:
        write_shard(3, samples, str(out))
    assert sorted(os.listdir(out)) == []  # no tar without its Parquet file, no temporary file
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(out / "00003.parquet")


def _build(out: Path, sample_dir: Path, preexec: str = "") -> subprocess.CompletedProcess[str]:
    code = "import sys\n" + preexec + "from imagenet_captions.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    args = [
        "build",
        "--metadata", f"release:{sample_dir / 'imagenet_captions.json'}",
        "--imagenet", str(sample_dir / "train"),
        "--num-shards", str(NUM_SHARDS),
        "--out", str(out),
    ]  # fmt: skip
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


def _digests(shard_dir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(shard_dir.glob("0*"))}


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("imagenet-captions build: error:")]
    assert done.returncode == 2 and len(errors) == 1, done.stderr[-3000:]
    return errors[0]


def _whole_shards_only(shard_dir: Path) -> None:
    """Every shard file under its final name has its partner, and no unfinished file is left."""
    stems = {p.name.split(".")[0] for p in shard_dir.glob("0*")}
    assert {p.name for p in shard_dir.glob("0*")} == {f"{s}.{e}" for s in stems for e in ("tar", "parquet")}
    assert not [p for p in shard_dir.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_a_build_into_a_full_disk_ends_in_one_line_and_its_rerun_finishes_it(
    small_disk: Path, sample_dir: Path, tmp_path: Path
) -> None:
    reference = tmp_path / "reference"
    assert _build(reference, sample_dir).returncode == 0
    filler = _leave_free(small_disk, 100 * PAGE)
    out = small_disk / "out"
    line = _one_error_line(_build(out, sample_dir))
    assert f"cannot write {out}/" in line and "No space left on device (ENOSPC)" in line, line
    _whole_shards_only(out / "shards")
    assert not (out / "report.json").exists()
    filler.unlink()
    done = _build(out, sample_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _digests(out / "shards") == _digests(reference / "shards")
    assert validate_build(str(out))[1] == []


@pytest.mark.slow
def test_a_file_size_limit_ends_the_build_in_one_line_naming_the_shard(
    sample_dir: Path, tmp_path: Path
) -> None:
    """EFBIG from the kernel on the first file past the limit: a tar (the manifests are far smaller)."""
    limit = 100_000
    out = tmp_path / "out"
    preexec = (
        "import resource, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
    )
    line = _one_error_line(_build(out, sample_dir, preexec))
    assert f"cannot write {out / 'shards'}/0" in line and ".tar: File too large (EFBIG)" in line, line
    _whole_shards_only(out / "shards")
    done = _build(out, sample_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert validate_build(str(out))[1] == []
