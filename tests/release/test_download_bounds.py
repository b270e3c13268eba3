"""Every way a host can keep a download busy without finishing it ends in a bounded number of requests.

A host that ignores Range and cuts at the same point, one that trickles bytes, one that asks to be
retried later than the file's deadline: each fails its file, naming it, after a number of requests
the options fix. The tests count requests, never seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from download_helpers import random_files, run_download, write_release

from imagenet_captions.release.download import DownloadOptions
from imagenet_captions.release.fetch import MAX_RESTARTS
from imagenet_captions.testing.static_host import Fault, StaticHost

FAST = ("--backoff", "0.01", "--backoff-max", "0.05")
BLOCK = 64 * 1024
BIG = "shards/00000.tar"
SIZES = {"README.md": 1500, BIG: 2_000_000}


@pytest.fixture
def release(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    files = random_files(11, SIZES)
    root = tmp_path / "release"
    write_release(root, files)
    return root, files


@pytest.fixture
def host(release: tuple[Path, dict[str, bytes]]):
    with StaticHost(release[0]) as h:
        yield h


def _failed(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("FAILED ")]


def test_a_host_that_ignores_range_and_always_cuts_fails_after_max_restarts(capsys, tmp_path, release, host):
    """Each cut brought bytes, which used to count as progress: 1,600 requests a file in 5 minutes."""
    out = tmp_path / "out"
    host.add_fault(Fault(BIG, "cut_whole", after=900_000, times=-1))
    args = (host.url + "manifest.json", "--out", str(out), "--block-size", str(BLOCK), *FAST)
    rc, stdout, _ = run_download(capsys, *args, "--attempts", "100")
    assert rc == 1
    (line,) = _failed(stdout)
    assert line.startswith(f"FAILED {BIG}: server answered a request for bytes 900000- with the whole file")
    assert line.endswith(f"(restarted {MAX_RESTARTS} times)"), line
    # The first request, then one 200 to a ranged request per restart, and the one past the bound.
    requests = host.requests(BIG)
    assert len(requests) == 1 + MAX_RESTARTS + 1
    assert [r.range for r in requests] == [None] + ["bytes=900000-"] * (MAX_RESTARTS + 1)
    assert (out / (BIG + ".part")).stat().st_size == 900_000  # the prefix held is kept for a rerun
    assert (out / "README.md").exists()


def test_attempts_without_progress_are_counted_even_when_bytes_arrive(capsys, tmp_path, release, host):
    """The same host, with fewer --attempts than restarts: the bytes that replace the prefix held
    are no progress, so the attempt bound ends it first."""
    out = tmp_path / "out"
    host.add_fault(Fault(BIG, "cut_whole", after=900_000, times=-1))
    args = (host.url + "manifest.json", "--out", str(out), "--block-size", str(BLOCK), *FAST)
    rc, stdout, _ = run_download(capsys, *args, "--attempts", "2")
    assert rc == 1
    (line,) = _failed(stdout)
    assert line.startswith(f"FAILED {BIG}: connection") and line.endswith("(gave up after 2 attempts)"), line
    assert len(host.requests(BIG)) == 2


def test_cuts_that_each_bring_new_bytes_still_finish(capsys, tmp_path, release, host):
    """Progress (the prefix passing its longest yet by a block) resets the count: a flaky link that
    honours Range finishes a file whatever the number of cuts."""
    root, files = release
    out = tmp_path / "out"
    host.add_fault(Fault(BIG, "cut", after=200_000, times=9))
    args = (host.url + "manifest.json", "--out", str(out), "--block-size", str(BLOCK), *FAST)
    rc, stdout, _ = run_download(capsys, *args, "--attempts", "2")
    assert rc == 0, stdout
    assert len(host.requests(BIG)) == 10
    assert (out / BIG).read_bytes() == files[BIG]


def test_cuts_that_each_bring_less_than_a_block_still_finish(capsys, tmp_path):
    """New bytes count however they come: every cut here brings 40,000 (less than the 64 KiB block),
    and together they pass a block every second attempt, which resets the count. Judged one attempt
    at a time, each was "no progress" and a link that steadily cut every 40 kB failed after
    ``--attempts`` cuts, however much of the file it had brought."""
    files = random_files(12, {"captions/00000.parquet": 300_000})
    root = tmp_path / "release"
    write_release(root, files)
    out = tmp_path / "out"
    with StaticHost(root) as h:
        h.add_fault(Fault("captions/00000.parquet", "cut", after=40_000, times=-1))
        args = (h.url + "manifest.json", "--out", str(out), "--block-size", str(BLOCK), *FAST)
        rc, stdout, _ = run_download(capsys, *args, "--attempts", "3")
        ranges = [r.range for r in h.requests("captions/00000.parquet")]
    assert rc == 0, stdout
    assert ranges == [None] + [f"bytes={40_000 * i}-" for i in range(1, 8)]  # 7 cuts, then the last 20,000
    assert (out / "captions/00000.parquet").read_bytes() == files["captions/00000.parquet"]


def test_a_trickle_below_min_rate_fails_the_file(capsys, tmp_path, release, host):
    out = tmp_path / "out"
    # 500 bytes a second; the floor asked is 100 kB/s over windows of 0.3 s.
    host.add_fault(Fault(BIG, "trickle", after=10, every=0.02, times=-1))
    args = (host.url + "manifest.json", "--out", str(out), "--block-size", str(BLOCK), *FAST)
    rc, stdout, _ = run_download(capsys, *args, "--timeout", "0.3", "--min-rate", "100000", "--attempts", "3")
    assert rc == 1
    (line,) = _failed(stdout)
    assert line.startswith(f"FAILED {BIG}: ") and "below --min-rate 100000" in line, line
    assert line.endswith("(gave up after 3 attempts)")
    assert len(host.requests(BIG)) == 3
    assert (out / "README.md").exists()


def test_the_deadline_ends_a_file_that_keeps_coming(capsys, tmp_path, release, host):
    """A trickle above --min-rate (none asked here) is ended by --deadline; its prefix is kept."""
    out = tmp_path / "out"
    host.add_fault(Fault(BIG, "trickle", after=2000, every=0.01, times=-1))
    args = (host.url + "manifest.json", "--out", str(out), "--block-size", str(BLOCK), *FAST)
    rc, stdout, _ = run_download(capsys, *args, "--min-rate", "0", "--deadline", "0.5")
    assert rc == 1
    (line,) = _failed(stdout)
    assert (
        line.startswith(f"FAILED {BIG}: --deadline of 0.5 s reached with ")
        and "kept for the next run" in line
    )
    assert len(host.requests(BIG)) == 1
    held = (out / (BIG + ".part")).stat().st_size
    assert 0 < held < SIZES[BIG]
    host.clear()
    rc, stdout, _ = run_download(capsys, *args)
    assert rc == 0, stdout
    (req,) = host.requests(BIG)
    assert req.range == f"bytes={held}-"


def test_a_retry_after_past_the_deadline_fails_at_once(capsys, tmp_path, release, host):
    out = tmp_path / "out"
    host.add_fault(Fault(BIG, "status", status=503, retry_after="30", times=-1))
    args = (host.url + "manifest.json", "--out", str(out), *FAST)
    rc, stdout, _ = run_download(capsys, *args, "--deadline", "5")
    assert rc == 1
    (line,) = _failed(stdout)
    assert line.startswith(f"FAILED {BIG}: HTTP 503 Service Unavailable; --deadline of 5 s reached"), line
    assert len(host.requests(BIG)) == 1


def test_default_bounds_fail_an_always_cutting_host_in_a_few_requests(capsys, tmp_path, release, host):
    """With the default options (fast backoff aside), the host that always cuts is done with in
    MAX_RESTARTS + 2 requests; the defaults' backoff for those waits is at most 0.5+1+2+4 s."""
    out = tmp_path / "out"
    host.add_fault(Fault(BIG, "cut_whole", after=1_500_000, times=-1))
    rc, stdout, _ = run_download(capsys, host.url + "manifest.json", "--out", str(out), *FAST)
    assert rc == 1 and _failed(stdout)[0].startswith(f"FAILED {BIG}: ")
    assert len(host.requests(BIG)) == 1 + MAX_RESTARTS + 1
    defaults = DownloadOptions(out=str(out), source="x")
    assert sum(min(defaults.backoff_max, defaults.backoff * 2**i) for i in range(MAX_RESTARTS + 1)) < 120
    assert defaults.deadline > 0 and defaults.min_rate > 0
