"""A build whose ``--out`` cannot be a folder it writes (an existing file, a path under one, a
read-only file system) is refused in one line, exit 2, before it reads or writes anything."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagenet_captions.cli import main


def _build(sample_dir: Path, out: Path) -> list[str]:
    return [
        "build",
        "--metadata", f"release:{sample_dir / 'imagenet_captions.json'}",
        "--imagenet", str(sample_dir / "train"),
        "--out", str(out),
    ]  # fmt: skip


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith("imagenet-captions build: error: ")
    return err[0]


def test_an_out_that_is_an_existing_file_is_one_line(sample_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "a-file"
    out.write_bytes(b"not a folder")
    capsys.readouterr()
    assert main(_build(sample_dir, out)) == 2
    assert str(out) in _one_line(capsys)
    assert out.read_bytes() == b"not a folder"


def test_an_out_under_a_file_is_one_line(sample_dir: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "a-file").write_bytes(b"")
    out = tmp_path / "a-file" / "out"
    capsys.readouterr()
    assert main(_build(sample_dir, out)) == 2
    assert str(tmp_path / "a-file") in _one_line(capsys)


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    """A read-only tmpfs (EROFS even for root), where mounting is allowed."""
    mnt = tmp_path / "ro"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_an_out_on_a_read_only_file_system_is_one_line(
    sample_dir: Path, read_only_disk: Path, capsys
) -> None:
    out = read_only_disk / "out"
    capsys.readouterr()
    assert main(_build(sample_dir, out)) == 2
    assert str(out) in _one_line(capsys)
