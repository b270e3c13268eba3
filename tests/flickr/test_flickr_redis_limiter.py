"""The shared (Redis) limiter: GCRA in a Lua script, against a redis-server started here."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections import Counter

import pytest
from flickr_helpers import answer_for

from imagenet_captions.flickr.client import FlickrClient, RetryPolicy
from imagenet_captions.flickr.fake_server import FakeFlickr
from imagenet_captions.flickr.redis_limiter import RedisKeyPool, SharedLimiterError, fingerprint, redact_url

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
pytest.importorskip("redis")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


def test_slots_are_spaced_by_the_redis_clock_and_keys_are_shared(redis_url: str) -> None:
    async def go():
        a = RedisKeyPool(redis_url, ["key-one", "key-two"], rate=10.0, prefix="t1:")
        b = RedisKeyPool(redis_url, ["key-one", "key-two"], rate=10.0, prefix="t1:")  # another worker
        got = [await (a if i % 2 else b).areserve() for i in range(10)]
        await a.aclose()
        await b.aclose()
        return got

    got = asyncio.run(go())
    by_key = Counter(index for index, _ in got)
    assert by_key == {0: 5, 1: 5}  # the key free soonest, across both workers
    for key in (0, 1):
        times = [at for index, at in got if index == key]
        gaps = [y - x for x, y in zip(times, times[1:], strict=False)]
        assert min(gaps) == pytest.approx(0.1, abs=0.01)  # one schedule per key, not per worker


def test_two_workers_share_one_keys_quota_against_the_server(redis_url: str, real_answers) -> None:
    """Two clients (two workers) with one key at 19/s each: together they must keep to 19/s,
    which the server (20/s per key) checks; with local limiters they would send 38/s."""
    template = next(iter(real_answers.values()))
    n = 60
    responses = {p: answer_for(template, p) for p in range(1, n + 1)}
    key = "shared-key-0123456789"

    async def go():
        async with FakeFlickr(responses, keys=[key], qps=20.0) as server:
            clients = [
                FlickrClient(
                    [key],
                    server.url,
                    qps=19.0,
                    retry=RetryPolicy(4, 0.01, 0.02, 2.0),
                    pool=RedisKeyPool(redis_url, [key], rate=19.0, prefix="t2:"),
                )
                for _ in range(2)
            ]
            t0 = time.monotonic()
            async with clients[0] as c0, clients[1] as c1:
                answers = await asyncio.gather(*((c0 if p % 2 else c1).get_info(p) for p in responses))
            return answers, time.monotonic() - t0, server.stats

    answers, elapsed, stats = asyncio.run(go())
    assert Counter(a.status for a in answers) == {"ok": n}
    # What the shared pool guarantees is one 19/s schedule of reservations for both clients, so the
    # 60 calls cannot end sooner than 58/19 s (two local limiters would take about half). The
    # server's refusals are not asserted: it counts arrivals, which a loaded machine can bunch
    # past the clients' schedule (a CI run saw one refusal in 61 calls), and a refusal is retried.
    assert elapsed >= (n - 2) / 19.0  # one shared 19/s schedule, not two
    assert stats.calls >= n


def test_redis_never_sees_the_key_and_errors_hide_the_password(redis_url: str) -> None:
    import redis

    async def go():
        pool = RedisKeyPool(redis_url, ["the-secret-key-123"], rate=5.0, prefix="t3:")
        await pool.areserve()
        await pool.apenalise(0)
        await pool.aclose()

    asyncio.run(go())
    r = redis.Redis.from_url(redis_url)
    names = [k.decode() for k in r.keys("t3:*")]
    r.close()
    assert names == ["t3:" + fingerprint("the-secret-key-123")]
    assert "the-secret-key-123" not in str(names)
    assert redact_url("redis://user:hunter2@10.0.0.1:6379/0") == "redis://***@10.0.0.1:6379/0"

    async def unreachable():
        pool = RedisKeyPool("redis://user:hunter2@127.0.0.1:9/0", ["k"], rate=5.0)
        try:
            await pool.areserve()
        finally:
            await pool.aclose()

    with pytest.raises(SharedLimiterError) as e:
        asyncio.run(unreachable())
    assert "hunter2" not in str(e.value)


def test_the_harvest_service_uses_the_shared_limiter_from_the_environment(
    redis_url: str, real_answers, tmp_path, monkeypatch
) -> None:
    from imagenet_captions.errors import UsageError
    from imagenet_captions.flickr.service import HarvestConfig, HarvestService

    key = "service-key-0123"
    with FakeFlickr(real_answers, keys=[key], qps=50.0) as server:
        cfg = HarvestConfig(str(tmp_path), "run", endpoint=server.url, qps=40.0, shared_limiter=True)
        monkeypatch.delenv("FLICKR_REDIS_URL", raising=False)
        with pytest.raises(UsageError, match="FLICKR_REDIS_URL"):
            HarvestService(cfg, keys=[key])
        monkeypatch.setenv("FLICKR_REDIS_URL", redis_url)
        svc = HarvestService(cfg, keys=[key])
        try:
            assert type(svc.client.pool).__name__ == "RedisKeyPool"
            assert svc.submit(3743398102, ["n07880968_1"]).result(timeout=10) == (3743398102, "ok", None)
        finally:
            svc.close()
