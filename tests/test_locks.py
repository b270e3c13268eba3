"""``locks.folder_lock``: one writer per folder, no trace of a refused command, stale holders named as such."""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import subprocess
import sys

import pytest

from imagenet_captions import locks
from imagenet_captions.cli import main
from imagenet_captions.errors import UsageError
from imagenet_captions.locks import LOCK_FILE, folder_lock


def _dead_pid() -> int:
    """The pid of a process that has ended and been reaped (not running, on this host)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not locks.pid_alive(proc.pid)
    return proc.pid


def test_an_out_that_is_a_file_is_one_line_and_left_alone(tmp_path):
    target = tmp_path / "out"
    target.write_text("mine")
    with pytest.raises(UsageError, match="exists and is not a folder"), folder_lock(str(target), "build"):
        pass
    assert target.read_text() == "mine"
    under_a_file = target / "sub" / "deeper"
    refused = pytest.raises(UsageError, match=f"cannot be made: {target} is not a folder")
    with refused, folder_lock(str(under_a_file), "build"):
        pass


def test_a_build_into_a_file_is_one_line_exit_2(sample_dir, tmp_path, capsys):
    target = tmp_path / "out"
    target.write_text("mine")
    assert main(["build", "--metadata", f"release:{sample_dir / 'imagenet_captions.json'}", "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exists and is not a folder" in err[0]
    assert target.read_text() == "mine"


def test_a_folder_nobody_may_write_in_is_one_line(tmp_path):
    """Root writes anywhere a mode allows, so as root the folder is made immutable (``chattr +i``),
    which stops root too; where that cannot be done the test says why and skips."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() == 0:
        done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"running as root and chattr +i is refused here ({done.stderr.strip()})")
        undo = ["chattr", "-i", str(folder)]
    else:
        folder.chmod(0o555)
        undo = ["chmod", "755", str(folder)]
    try:
        with pytest.raises(UsageError, match="is not writable"), folder_lock(str(folder), "build"):
            pass
        refused = pytest.raises(UsageError, match=f"cannot be made: {folder} is not writable")
        with refused, folder_lock(str(folder / "out"), "build"):
            pass
    finally:
        subprocess.run(undo, check=True)
    assert list(folder.iterdir()) == []


def test_a_refused_block_leaves_no_lock_and_no_folder_it_made(tmp_path):
    made = tmp_path / "new" / "nested" / "out"
    with pytest.raises(UsageError, match="bad input"), folder_lock(str(made), "build"):
        assert (made / LOCK_FILE).is_file()
        raise UsageError("bad input")
    assert not (tmp_path / "new").exists()  # every level the lock made, since nothing is in them

    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(UsageError), folder_lock(str(existing), "build"):
        raise UsageError("bad input")
    assert existing.is_dir() and list(existing.iterdir()) == []  # the user's folder stays, without a .lock

    with pytest.raises(UsageError), folder_lock(str(made), "build"):
        (made / "partial.json").write_text("{}")
        raise UsageError("bad input found late")
    assert [p.name for p in made.iterdir()] == ["partial.json"]  # not empty: kept, but no .lock


def test_a_refused_build_leaves_no_out(tmp_path, capsys):
    out = tmp_path / "new" / "out"
    assert main(["build", "--metadata", f"release:{tmp_path / 'missing.json'}", "--out", str(out)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists()


def test_the_lock_file_lives_only_while_held(tmp_path):
    """A .lock found later was left by a killed holder: it can never be taken for a running one."""
    with folder_lock(str(tmp_path), "build"):
        line = (tmp_path / LOCK_FILE).read_text()
        assert line.startswith(f"build pid {os.getpid()} on {socket.gethostname()} since ")
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_stale_lock_left_by_a_killed_holder_is_taken_over_and_said_to_be_stale(tmp_path, caplog):
    dead = _dead_pid()
    (tmp_path / LOCK_FILE).write_text(f"build pid {dead} on {socket.gethostname()} since 2026-01-01T00:00:00+00:00\n")
    with caplog.at_level(logging.INFO, logger="imagenet_captions.locks"), folder_lock(str(tmp_path), "release"):
        assert (tmp_path / LOCK_FILE).read_text().startswith(f"release pid {os.getpid()} ")
    assert "stale" in caplog.text and f"pid {dead}" in caplog.text


def test_a_live_conflict_never_names_a_dead_pid_as_the_holder(tmp_path):
    """flock says the lock is held, but the pid its line names is gone (a child that inherited the
    descriptor holds it): the refusal must not send the user after that pid."""
    dead = _dead_pid()
    fd = os.open(tmp_path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"build pid {dead} on {socket.gethostname()} since 2026-01-01T00:00:00+00:00\n".encode())
        with pytest.raises(UsageError) as refused, folder_lock(str(tmp_path), "build"):
            pass
    finally:
        os.close(fd)
    message = str(refused.value)
    assert message.startswith(f"another build is writing to {tmp_path}: ")
    assert str(dead) not in message and "no longer running" in message and "still holds it" in message
    assert (tmp_path / LOCK_FILE).exists()  # the holder's file is not ours to remove


def test_a_live_holder_is_named(tmp_path):
    refused = pytest.raises(UsageError, match=rf"another build is writing to .*: harvest pid {os.getpid()} on ")
    with folder_lock(str(tmp_path), "harvest"), refused, folder_lock(str(tmp_path), "build"):
        pass


def test_a_lock_taken_on_a_file_its_holder_just_removed_is_taken_again(tmp_path, monkeypatch):
    """Between our open and our flock the last holder ends and removes the file: the flock we then get
    is on a file no one else will open, so the lock must be taken again on the file at the path."""
    real_flock = fcntl.flock
    calls = []

    def flock_after_the_holder_left(fd: int, op: int) -> None:
        if not calls:
            os.remove(tmp_path / LOCK_FILE)  # what a holder ending between our open and flock does
        calls.append(op)
        real_flock(fd, op)

    monkeypatch.setattr(locks.fcntl, "flock", flock_after_the_holder_left)
    with folder_lock(str(tmp_path), "build"):
        monkeypatch.setattr(locks.fcntl, "flock", real_flock)
        with pytest.raises(UsageError, match="another release is writing"), folder_lock(str(tmp_path), "release"):
            pass
    assert len(calls) == 2


def test_missing_folders_are_the_levels_making_one_makes(tmp_path):
    deep = tmp_path / "a" / "b"
    assert locks.missing_folders(str(deep)) == [str(deep), str(tmp_path / "a")]
    assert locks.missing_folders(str(tmp_path)) == []
    locks.remove_empty([str(tmp_path / "nothing")])  # a folder that does not exist: nothing to do
