"""The Beam harvest end to end against the loopback server: accounting, resume, refresh, limit,
a fatal key, kill -9 halfway."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagenet_captions.errors import UsageError
from imagenet_captions.flickr import store
from imagenet_captions.flickr.fake_server import FakeFlickr, Faults
from imagenet_captions.flickr.pipeline import parse_age, run_harvest
from imagenet_captions.flickr.service import HarvestConfig, HarvestService

KEY = "k3y-for-harvest-tests-0123456789"
FAST = dict(qps=150.0, timeout=0.5, base_delay=0.01, max_delay=0.05, progress_every=0.5, fsync_interval=0.02)
FAULTS = Faults(
    p_5xx=0.05,
    p_105=0.05,
    p_truncated=0.03,
    p_html=0.03,
    p_reset=0.03,
    latency_median=0.002,
    latency_p99=0.05,
    seed=11,
)


@pytest.fixture()
def key_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("FLICKR_API_KEY", KEY)
    return KEY


def logical(out: Path) -> dict[int, tuple]:
    """The store's content, without fetch times and run ids (which differ from run to run)."""
    return {
        pid: (a.status, a.code, a.raw, tuple(a.image_ids))
        for pid, a in store.effective_answers(str(out / "responses")).items()
    }


def test_harvest_accounts_for_every_line_and_never_asks_twice(make_world, key_env, tmp_path: Path) -> None:
    urls, responses = make_world(60)
    out = tmp_path / "out"
    with FakeFlickr(responses, keys=[KEY], qps=200, faults=FAULTS) as server:
        report = run_harvest(str(urls), str(out), {"endpoint": server.url, **FAST})
        assert report["lines"] == {
            "matched": 61,
            "not_flickr": 1,
            "flickr_no_id": 0,
            "other_synset": 0,
            "malformed": 1,
            "blank": 0,
        }
        assert report["photos"] == {"matched": 60, "skipped_answered": 0, "left_by_limit": 0, "to_fetch": 60}
        assert report["fetched"] == {"ok": 54, "not_found": 6, "failed": 0, "gave_up": 0}
        assert report["calls"]["calls"] == server.stats.calls > 60  # the faults were retried
        assert report["store"]["images"] == {"ok": 55, "not_found": 6, "failed": 0, "gave_up": 0}
        names = os.listdir(out / "responses")
        assert not [n for n in names if n.startswith("journal-")] and any(
            n.endswith(".parquet") for n in names
        )
        assert max(server.stats.answered.values()) == 1
        first = logical(out)
        # Two image ids point at photo 5_000_000_000; both are in the store.
        assert first[5_000_000_000][3] == ("n01440764_0", "n01443537_1")

        calls = server.stats.calls
        again = run_harvest(str(urls), str(out), {"endpoint": server.url, **FAST})
        assert again["photos"]["skipped_answered"] == 60 and again["photos"]["to_fetch"] == 0
        assert server.stats.calls == calls  # nothing asked twice
        assert logical(out) == first


def test_refresh_fetches_again_and_keeps_both_versions(make_world, key_env, tmp_path: Path) -> None:
    urls, responses = make_world(12, gone=0)
    out = tmp_path / "out"
    with FakeFlickr(responses, keys=[KEY], qps=200) as server:
        run_harvest(str(urls), str(out), {"endpoint": server.url, **FAST})
        between = time.time()
        time.sleep(0.01)
        pid = min(responses)
        responses[pid]["photo"]["title"] = {"_content": "renamed by its owner"}
        server.responses[pid] = responses[pid]
        skipped = run_harvest(str(urls), str(out), {"endpoint": server.url, **FAST}, refresh_age=3600)
        assert skipped["photos"]["to_fetch"] == 0  # younger than an hour
        report = run_harvest(str(urls), str(out), {"endpoint": server.url, **FAST}, refresh_age=0)
    assert report["photos"]["to_fetch"] == 12 and report["fetched"]["ok"] == 12
    rows = store.read_answers(str(out / "responses"))
    assert len(rows) == 24 and len({a.run_id for a in rows}) == 2
    from datetime import datetime, timezone

    now = {r["photo_id"]: r["title"] for r in store.iter_release_records(str(out))}
    then = {
        r["photo_id"]: r["title"]
        for r in store.iter_release_records(str(out), datetime.fromtimestamp(between, timezone.utc))
    }
    assert now[pid] == "renamed by its owner" and then[pid] == "photo 0"


def test_limit_takes_the_smallest_ids_and_counts_the_rest(make_world, key_env, tmp_path: Path) -> None:
    urls, responses = make_world(30, gone=0)
    raw = urls.read_bytes()
    gz = tmp_path / "urls.gz"
    gz.write_bytes(gzip.compress(raw.replace(b"\n", b"\r\n")))
    with FakeFlickr(responses, keys=[KEY], qps=200) as server:
        report = run_harvest(str(gz), str(tmp_path / "out"), {"endpoint": server.url, **FAST}, limit=10)
    assert report["photos"]["to_fetch"] == 10 and report["photos"]["left_by_limit"] == 20
    assert sorted(server.stats.answered) == sorted(responses)[:10]


def test_only_imagenet_1k_classes_unless_asked(make_world, key_env, tmp_path: Path) -> None:
    urls, responses = make_world(5, gone=0)
    # n00004475 (organism) is in the full list but not one of ImageNet-1k's classes
    extra = "n00004475_6590\thttp://farm4.static.flickr.com/3175/2737866473_7958dc8760.jpg\n"
    urls.write_text(urls.read_text() + extra)
    with FakeFlickr(responses, keys=[KEY], qps=200) as server:
        one_k = run_harvest(str(urls), str(tmp_path / "a"), {"endpoint": server.url, **FAST})
        assert (one_k["lines"]["other_synset"], one_k["photos"]["matched"]) == (1, 5)
        every = run_harvest(str(urls), str(tmp_path / "b"), {"endpoint": server.url, **FAST}, synsets="all")
        assert (every["lines"]["other_synset"], every["photos"]["matched"]) == (0, 6)
        listed = tmp_path / "wnids.txt"
        listed.write_text("# just this one\nn00004475\n")
        only = run_harvest(
            str(urls), str(tmp_path / "c"), {"endpoint": server.url, **FAST}, synsets=str(listed)
        )
        assert (only["lines"]["other_synset"], only["photos"]["matched"]) == (7, 1)
    assert only["fetched"] == {"ok": 0, "not_found": 1, "failed": 0, "gave_up": 0}
    listed.write_text("tench\n")
    with pytest.raises(UsageError, match="must list wnids"):
        run_harvest(str(urls), str(tmp_path / "d"), synsets=str(listed))


def test_an_invalid_key_stops_the_harvest_at_once(make_world, monkeypatch, tmp_path: Path) -> None:
    urls, responses = make_world(40, gone=0)
    monkeypatch.setenv("FLICKR_API_KEY", "not-the-right-key-42")
    with FakeFlickr(responses, keys=[KEY], qps=200) as server:
        with pytest.raises(UsageError, match="invalid") as e:
            run_harvest(str(urls), str(tmp_path / "out"), {"endpoint": server.url, **FAST, "qps": 20.0})
        assert server.stats.invalid_key <= 2 and server.stats.calls <= 2
    assert "not-the-right-key-42" not in str(e.value)


def test_usage_errors(tmp_path: Path, key_env) -> None:
    with pytest.raises(UsageError, match="not found"):
        run_harvest(str(tmp_path / "missing.txt"), str(tmp_path / "out"))
    for beam_args in (["--runner=DataflowRunner"], ["--direct_running_mode=multi_processing"]):
        with pytest.raises(UsageError, match="one process"):
            run_harvest(str(Path(__file__)), str(tmp_path / "out"), beam_args=beam_args)
    with pytest.raises(UsageError):
        parse_age("soon")
    assert parse_age("90m") == 5400 and parse_age("2d") == 172800 and parse_age("1") == 86400


def test_the_service_never_asks_twice_in_a_run(real_answers, tmp_path: Path) -> None:
    """A Beam retry of a bundle resubmits its photos: the service answers from memory."""
    with FakeFlickr(real_answers, keys=[KEY], qps=200) as server:
        cfg = HarvestConfig(str(tmp_path), "run1", endpoint=server.url, qps=100.0, timeout=1.0)
        svc = HarvestService(cfg, keys=[KEY])
        try:
            futs = [svc.submit(3743398102, ["n07880968_1"]) for _ in range(3)]
            assert {f.result(timeout=10) for f in futs} == {(3743398102, "ok", None)}
            assert svc.submit(3743398102, ["n07880968_1"]).result(timeout=10) == (3743398102, "ok", None)
        finally:
            svc.close()
        assert server.stats.calls == 1
    assert [a.photo_id for a in store.read_answers(str(tmp_path))] == [3743398102]


@pytest.mark.slow
def test_kill_9_halfway_then_resume_loses_nothing_and_asks_nothing_twice(make_world, tmp_path: Path) -> None:
    urls, responses = make_world(200, gone=8)
    env = {**os.environ, "FLICKR_API_KEY": KEY}
    faults = Faults(p_5xx=0.03, p_reset=0.02, latency_median=0.005, latency_p99=0.1, seed=5)

    def harvest(out: Path, url: str) -> subprocess.Popen:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "imagenet_captions.cli",
                "harvest",
                "--urls",
                str(urls),
                "--out",
                str(out),
                "--endpoint",
                url,
                "--qps",
                "80",
                "--timeout",
                "1",
                "--progress-every",
                "1",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    with FakeFlickr(responses, keys=[KEY], qps=100, faults=faults) as server:
        killed = tmp_path / "killed"
        proc = harvest(killed, server.url)
        deadline = time.monotonic() + 60
        while (
            sum(server.stats.answered.values()) < 90 and time.monotonic() < deadline and proc.poll() is None
        ):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        stored = store.answered_photo_ids(str(killed / "responses"))
        asked_before = dict(server.stats.answered)
        assert 60 <= len(stored) < 200  # killed halfway, most answers kept
        # only calls in flight (or in the last unsynced batch) can be lost
        assert sum(asked_before.values()) - len(stored) <= 40

        proc = harvest(killed, server.url)
        assert proc.wait(timeout=120) == 0, proc.stdout.read().decode()
        for pid in stored:
            assert server.stats.answered[pid] == asked_before[pid] == 1, pid
        resumed = logical(killed)

    with FakeFlickr(responses, keys=[KEY], qps=100, faults=faults) as server:
        clean = tmp_path / "clean"
        proc = harvest(clean, server.url)
        assert proc.wait(timeout=120) == 0
    assert resumed == logical(clean)
    assert len(resumed) == 200
