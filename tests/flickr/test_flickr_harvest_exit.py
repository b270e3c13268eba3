"""The harvest's exit status: 1 with one line when no photo got an answer, 0 when some did.

An answer is ``ok`` or ``not_found``: what the harvest is for. A run in which every photo gave up
(the endpoint down, every call a 5xx) or got a Flickr error code (a wrong endpoint answering
"method not found") harvested nothing, and a script that runs it must see that.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagenet_captions.cli import main
from imagenet_captions.flickr.fake_server import FakeFlickr, Faults

KEY = "k3y-for-exit-tests-0123456789abc"
FAST = ["--qps", "150", "--timeout", "0.5", "--backoff-base", "0.01", "--backoff-max", "0.02",
        "--max-attempts", "2", "--progress-every", "0.5", "--fsync-interval", "0.02"]  # fmt: skip
FAILED = {"stat": "fail", "code": 2, "message": "Permission denied"}


def harvest(urls: Path, out: Path, server: FakeFlickr, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(["harvest", "--urls", str(urls), "--out", str(out), "--endpoint", server.url, *FAST])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.fixture()
def key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLICKR_API_KEY", KEY)


def test_every_photo_gave_up_is_exit_1_in_one_line(make_world, key_env, tmp_path: Path, capsys) -> None:
    urls, responses = make_world(12)
    with FakeFlickr(responses, keys=[KEY], faults=Faults(p_5xx=1.0)) as server:
        rc, out, err = harvest(urls, tmp_path / "out", server, capsys)
    assert rc == 1
    lines = [ln for ln in err.splitlines() if "harvest" in ln and "error" in ln]
    assert len(lines) == 1 and "none of the 12 photos got an answer" in lines[0] and "gave_up 12" in lines[0]
    assert "http_5xx" in lines[0]  # why: the calls' outcomes
    report = json.loads((tmp_path / "out" / "harvest_report.json").read_text())
    assert report["fetched"] == {"ok": 0, "not_found": 0, "failed": 0, "gave_up": 12}  # still written


def test_every_photo_failed_with_a_code_is_exit_1(make_world, key_env, tmp_path: Path, capsys) -> None:
    urls, responses = make_world(6, gone=0)
    with FakeFlickr({pid: FAILED for pid in responses}, keys=[KEY]) as server:
        rc, _, err = harvest(urls, tmp_path / "out", server, capsys)
    assert rc == 1 and "none of the 6 photos got an answer" in err and "failed 6" in err


def test_a_partial_failure_exits_0_and_counts_the_failures(make_world, key_env, tmp_path: Path, capsys) -> None:
    urls, responses = make_world(10, gone=0)
    failing = sorted(responses)[:4]
    with FakeFlickr({**responses, **{pid: FAILED for pid in failing}}, keys=[KEY]) as server:
        rc, out, err = harvest(urls, tmp_path / "out", server, capsys)
    assert rc == 0, err
    assert '"ok": 6' in out and '"failed": 4' in out
    report = json.loads((tmp_path / "out" / "harvest_report.json").read_text())
    assert report["fetched"] == {"ok": 6, "not_found": 0, "failed": 4, "gave_up": 0}


def test_all_not_found_or_nothing_to_fetch_exits_0(make_world, key_env, tmp_path: Path, capsys) -> None:
    """Not found is an answer (the photo is gone); a rerun with nothing left to ask did not fail."""
    urls, responses = make_world(5, gone=0)
    with FakeFlickr({}, keys=[KEY]) as server:
        assert harvest(urls, tmp_path / "out", server, capsys)[0] == 0
        assert harvest(urls, tmp_path / "out", server, capsys)[0] == 0
