"""``--out`` as the downloader finds it: links it must not write through, a folder it cannot write or
that another download holds, a disk that fills up; and what the command says about it (the summary's
bytes, the options' help).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from download_helpers import manifest_for, random_files, run_download, write_release

from imagenet_captions import cli, manifest
from imagenet_captions.locks import LOCK_FILE, folder_lock
from imagenet_captions.release import download
from imagenet_captions.testing.static_host import Fault, StaticHost

FAST = ("--backoff", "0.01", "--backoff-max", "0.05")
BIG = "shards/00000.tar"
SIZES = {"README.md": 1000, "captions/00000.parquet": 200_000, BIG: 3_000_000}


@pytest.fixture
def release(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    files = random_files(21, SIZES)
    root = tmp_path / "release"
    write_release(root, files)
    return root, files


@pytest.fixture
def host(release: tuple[Path, dict[str, bytes]]):
    with StaticHost(release[0]) as h:
        yield h


def _one_error_line(stderr: str) -> str:
    (line,) = stderr.strip().splitlines()
    assert line.startswith("imagenet-captions download: error: "), line
    return line


# -- links in --out --------------------------------------------------------------------------------


def _sidecar_for(files: dict[str, bytes], path: str) -> str:
    """The sidecar a previous run would have left for ``path``: it names the manifest's entry."""
    data = files[path]
    identity = {"path": path, "size": len(data), "algo": "sha256", "digest": hashlib.sha256(data).hexdigest()}
    return json.dumps({"file": identity, "validator": ""})


@pytest.mark.parametrize("link", [".part", ".part.json"])
def test_a_symlinked_partial_or_sidecar_is_never_written_through(capsys, tmp_path, release, host, link):
    """A ``.part`` linked to a file outside ``--out`` (with a sidecar that names the entry) used to be
    resumed: truncated to its length and completed, outside ``--out``."""
    _, files = release
    out = tmp_path / "out"
    (out / "shards").mkdir(parents=True)
    precious = tmp_path / "precious.bin"
    precious.write_bytes(b"not yours " * 100)
    if link == ".part":
        (out / (BIG + ".part")).symlink_to(precious)
        (out / (BIG + ".part.json")).write_text(_sidecar_for(files, BIG))
    else:
        precious.write_text(_sidecar_for(files, BIG))
        (out / (BIG + ".part")).write_bytes(files[BIG][:1000])
        (out / (BIG + ".part.json")).symlink_to(precious)
    before = precious.read_bytes()
    rc, stdout, stderr = run_download(capsys, host.url + "manifest.json", "--out", str(out), *FAST)
    assert rc == 2 and stdout == ""
    line = _one_error_line(stderr)
    assert f"{BIG}{link} in --out is a symlink" in line, line
    assert precious.read_bytes() == before
    assert host.requests(BIG) == []


def test_a_partial_linked_to_another_file_inside_out_is_refused(capsys, tmp_path, release, host):
    root, files = release
    out = tmp_path / "out"
    assert run_download(capsys, host.url + "manifest.json", "--out", str(out), *FAST)[0] == 0
    (out / BIG).unlink()
    (out / (BIG + ".part")).symlink_to(out / "README.md")
    (out / (BIG + ".part.json")).write_text(_sidecar_for(files, BIG))
    rc, _, stderr = run_download(capsys, host.url + "manifest.json", "--out", str(out), *FAST)
    assert rc == 2 and "is a symlink" in _one_error_line(stderr)
    assert (out / "README.md").read_bytes() == files["README.md"]


def test_a_partial_that_is_a_folder_is_refused(capsys, tmp_path, release, host):
    out = tmp_path / "out"
    (out / (BIG + ".part.json")).mkdir(parents=True)
    rc, _, stderr = run_download(capsys, host.url + "manifest.json", "--out", str(out), *FAST)
    assert rc == 2 and f"{BIG}.part.json in --out is not a regular file" in _one_error_line(stderr)


# -- a folder that cannot be written, or is held ------------------------------------------------------


def test_out_that_is_a_file_is_one_line(capsys, tmp_path, release, host):
    out = tmp_path / "out"
    out.write_bytes(b"a file")
    rc, _, stderr = run_download(capsys, host.url + "manifest.json", "--out", str(out))
    assert rc == 2 and _one_error_line(stderr).endswith(f"--out {out} exists and is not a folder")
    assert out.read_bytes() == b"a file"


def test_out_under_a_file_is_one_line(capsys, tmp_path, release, host):
    (tmp_path / "file").write_bytes(b"a file")
    out = tmp_path / "file" / "out"
    rc, _, stderr = run_download(capsys, host.url + "manifest.json", "--out", str(out))
    assert rc == 2 and str(out) in _one_error_line(stderr)


def test_a_second_download_into_the_same_folder_is_refused(capsys, tmp_path, release, host):
    out = tmp_path / "out"
    with folder_lock(str(out), "download"):
        rc, _, stderr = run_download(capsys, host.url + "manifest.json", "--out", str(out), *FAST)
        assert [r.path for r in host.requests()] == ["manifest.json"]
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # the holder's; nothing of the refused run
    assert rc == 2 and "another download is writing to" in _one_error_line(stderr)


def test_the_lock_is_a_name_no_release_may_publish():
    assert manifest.DOWNLOAD_LOCK_FILE == LOCK_FILE and LOCK_FILE in manifest.RESERVED_NAMES


def test_the_download_holds_its_lock_while_it_runs(capsys, tmp_path, release):
    root, files = release
    out = tmp_path / "out"
    with StaticHost(root, throttle=500_000) as h:
        cmd = [sys.executable, "-m", "imagenet_captions.cli", "download", h.url + "manifest.json"]
        proc = subprocess.Popen([*cmd, "--out", str(out), "--no-progress"], stdout=subprocess.PIPE)
        try:
            # The sidecar is written before the first byte of the big file: the first run is fetching.
            while not (out / (BIG + ".part.json")).exists() and proc.poll() is None:
                time.sleep(0.02)
            rc, _, stderr = run_download(capsys, h.url + "manifest.json", "--out", str(out))
        finally:
            h.throttle = None
            first = proc.wait(60)
    assert rc == 2 and "another download is writing to" in _one_error_line(stderr)
    assert first == 0
    assert (out / BIG).read_bytes() == files[BIG]


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


needs_mounts = pytest.mark.skipif(
    not _unshare_works(), reason="needs `unshare -rm` (a user and mount namespace) to mount a tmpfs"
)


def _in_mount_namespace(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``script`` (sh) run as root of a new user and mount namespace, where it may mount a tmpfs:
    a small or read-only disk for real, without touching the machine's mounts."""
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", *args], capture_output=True, text=True, timeout=120
    )


@needs_mounts
def test_a_read_only_out_is_one_line(tmp_path, release, host):
    mnt = tmp_path / "ro"
    mnt.mkdir()
    script = (
        'mount -t tmpfs tmpfs "$1" && mount -o remount,ro "$1" || exit 90\n'
        'for out in "$1" "$1/new"; do\n'
        '  "$2" -m imagenet_captions.cli download "$3" --out "$out" --no-progress; echo "rc=$?"\n'
        "done\n"
    )
    done = _in_mount_namespace(script, str(mnt), sys.executable, host.url + "manifest.json")
    assert done.stdout.splitlines() == ["rc=2", "rc=2"], done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr
    for line, out in zip(lines, (mnt, mnt / "new"), strict=True):
        assert line.startswith("imagenet-captions download: error: ") and str(out) in line, line


@needs_mounts
def test_a_full_disk_is_one_line_naming_the_file_and_a_rerun_resumes(tmp_path, release, host):
    root, files = release
    mnt = tmp_path / "small"
    mnt.mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    download = '"$2" -m imagenet_captions.cli download "$3" --out "$1/out" --no-progress --jobs 1'
    script = (
        'mount -t tmpfs -o size=1m tmpfs "$1" || exit 90\n'
        f'{download} >"$4/out1" 2>"$4/err1"; echo $? >"$4/rc1"\n'
        'ls -A "$1/out/shards" >"$4/ls1"; ls -A "$1/out" >"$4/ls0"\n'
        'mount -o remount,size=16m tmpfs "$1" || exit 91\n'
        f'{download} >"$4/out2" 2>"$4/err2"; echo $? >"$4/rc2"\n'
        'cmp "$1/out/shards/00000.tar" "$5" || exit 92\n'
    )
    done = _in_mount_namespace(
        script, str(mnt), sys.executable, host.url + "manifest.json", str(logs), str(root / BIG)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (logs / "rc1").read_text().strip() == "2"
    assert (logs / "out1").read_text() == ""
    line = _one_error_line((logs / "err1").read_text())
    assert "no space left on the device of --out" in line and f"while writing {BIG}" in line, line
    assert "00000.tar.part" in (logs / "ls1").read_text().split()  # what came is kept
    # and nothing half-written: the verified-files record that could not be saved left no temporary file
    assert [
        n for n in (logs / "ls0").read_text().split() + (logs / "ls1").read_text().split() if ".tmp" in n
    ] == []
    second_run = (logs / "out2").read_text() + (logs / "err2").read_text()
    assert (logs / "rc2").read_text().strip() == "0", second_run
    first, second = host.requests(BIG)
    assert first.range is None and second.range is not None and second.status == 206  # resumed


# -- what the command says ---------------------------------------------------------------------------


def test_the_summary_counts_the_bytes_of_a_file_that_failed(capsys, tmp_path):
    files = random_files(22, {"captions/00000.parquet": 1_234_567})
    manifest = manifest_for(files)
    manifest["files"][0]["sha256"] = "0" * 64
    root = tmp_path / "release"
    write_release(root, files, manifest)
    with StaticHost(root) as h:
        rc, stdout, _ = run_download(capsys, h.url + "manifest.json", "--out", str(tmp_path / "out"), *FAST)
    assert rc == 1
    assert stdout.splitlines()[-1].startswith("INCOMPLETE: 1 of 1 files failed: 0 files verified")
    assert "; 1.2 MB fetched in " in stdout, stdout


def test_the_summary_counts_every_attempt_of_a_file_that_failed(capsys, tmp_path):
    files = random_files(23, {"captions/00000.parquet": 300_000})
    root = tmp_path / "release"
    write_release(root, files)
    with StaticHost(root) as h:
        h.add_fault(Fault("captions/00000.parquet", "cut", after=100_000, times=-1))
        args = (h.url + "manifest.json", "--out", str(tmp_path / "out"), "--attempts", "2", *FAST)
        rc, stdout, _ = run_download(capsys, *args)
        sent = h.bytes_sent("captions/00000.parquet")
    assert rc == 1 and sent == 200_000
    assert "; 200.0 kB fetched in " in stdout, stdout


def test_every_download_option_has_help_and_shows_its_default(capsys):
    parser = argparse.ArgumentParser()
    download.add_arguments(parser)
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS or action.dest == "help":
            continue
        assert action.help, f"{action.option_strings[0]} has no help"
        if action.default not in (None, False, [], argparse.SUPPRESS):
            assert "default" in action.help, f"{action.option_strings[0]} does not show its default"
    with pytest.raises(SystemExit) as stop:
        cli.main(["download", "--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--backoff-max SECONDS largest backoff ceiling a retry waits under (default: 30.0)" in text
    assert "(default: 3600.0)" in text and "(default: 1000.0)" in text
