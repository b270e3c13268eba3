"""The names the downloader itself writes in ``--out`` (its lock, its record of verified files, the
manifest) are never written through a link someone left there: the file the link points at, outside
``--out``, keeps its bytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from download_helpers import random_files, run_download, write_release

PRECIOUS = b"not the downloader's to write\n"


@pytest.mark.parametrize("name", [".lock", ".download-state.json", "manifest.json"])
def test_a_link_in_out_is_never_written_through(capsys, tmp_path: Path, name: str) -> None:
    files = random_files(31, {"README.md": 1000})
    root = tmp_path / "release"
    write_release(root, files)
    out = tmp_path / "out"
    out.mkdir()
    precious = tmp_path / "precious"
    precious.write_bytes(PRECIOUS)
    (out / name).symlink_to(precious)
    rc, stdout, stderr = run_download(capsys, str(root), "--out", str(out))
    assert precious.read_bytes() == PRECIOUS
    if name == ".lock":
        # Opened in place, never renamed over: a link there is refused, in one line, and left alone.
        assert rc == 2 and stdout == ""
        (line,) = stderr.strip().splitlines()
        assert line.startswith("imagenet-captions download: error: ") and "is a symbolic link" in line, line
        assert (out / name).is_symlink() and not (out / "README.md").exists()
    else:
        # Written whole under a temporary name and renamed: the rename replaces the link itself.
        assert rc == 0, stdout + stderr
        assert not (out / name).is_symlink() and (out / "README.md").read_bytes() == files["README.md"]
