"""The fetch engine, shared by every fetch DoFn of a harvest in this process.

Why a process-wide service: the quota belongs to the key, not to a DoFn instance or a bundle, so
one limiter per key must see every call the process makes; and many calls must be in flight while
each waits for its slot. The service owns one asyncio event loop (in a background thread), one
:class:`~imagenet_captions.flickr.client.FlickrClient` (and so one limiter per key) and one
:class:`~imagenet_captions.flickr.journal.JournalWriter`. DoFns hand it photos and get futures.

Idempotence: the service remembers every photo answered in this run, so a Beam retry of a bundle
gets the recorded answer back without a call; a photo whose call was in flight when a bundle
failed is asked at most once more, and the duplicate rows vanish at compaction (per photo and run,
the newest wins).

The API key is read here, where the client is created (environment or key file), never from a
pipeline option.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imagenet_captions.errors import UsageError
from imagenet_captions.flickr.client import DEFAULT_ENDPOINT, FlickrClient
from imagenet_captions.flickr.journal import JournalWriter
from imagenet_captions.flickr.keys import load_api_keys
from imagenet_captions.flickr.protocol import Answer, InvalidKeyError, RetryPolicy
from imagenet_captions.flickr.segments import StoredAnswer
from imagenet_captions.options import as_float, as_int, flag

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HarvestConfig:
    """Everything a fetch needs, minus the key (this object is pickled into the pipeline)."""

    responses_dir: str
    run_id: str
    endpoint: str = DEFAULT_ENDPOINT
    qps: float = 0.95
    burst: int = 1
    concurrency: int | None = None
    timeout: float = 30.0
    max_attempts: int = 8
    base_delay: float = 1.0
    max_delay: float = 120.0
    api_key_file: str | None = None
    fsync_every: int = 64
    fsync_interval: float = 0.25
    rotate_every: int = 20_000
    progress_every: float = 10.0
    #: Share each key's schedule with every worker through Redis at $FLICKR_REDIS_URL.
    shared_limiter: bool = False

    def __post_init__(self) -> None:
        """Refuse values that would hang or spin the service (a zero rate waits forever, a zero
        progress interval busy-loops) here, once, before any key is read or any call made."""
        for name, minimum in _COUNTS:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, as_int(_option(name), value, minimum=minimum))
        for name, low_open in _SPANS:
            value = getattr(self, name)
            object.__setattr__(self, name, as_float(_option(name), value, 0.0, low_open=low_open))
        if self.max_delay < self.base_delay:
            raise UsageError(
                f"--backoff-max ({self.max_delay:g}) must not be below --backoff-base ({self.base_delay:g})"
            )


def _option(field: str) -> str:
    """The command-line option of a config field, so an error names what the user typed."""
    return _RENAMED.get(field, flag(field))


#: Fields whose option is not spelled like the field (``rotate_every`` has none: it keeps its name).
_RENAMED = {"base_delay": "--backoff-base", "max_delay": "--backoff-max", "rotate_every": "rotate_every"}
#: (field, least value): counts start at 1 (``concurrency`` None means "enough for the quota").
_COUNTS = (
    ("burst", 1),
    ("concurrency", 1),
    ("max_attempts", 1),
    ("fsync_every", 1),
    ("rotate_every", 1),
)
#: (field, zero excluded): rates and intervals must be positive; backoffs may be zero.
_SPANS = (
    ("qps", True),
    ("timeout", True),
    ("base_delay", False),
    ("max_delay", False),
    ("fsync_interval", True),
    ("progress_every", True),
)


def format_duration(seconds: float) -> str:
    """``3d 04:05:06`` / ``04:05:06``: an ETA a person reads."""
    if seconds != seconds or seconds == float("inf"):
        return "unknown"
    s = int(round(seconds))
    days, s = divmod(s, 86_400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{days}d " if days else "") + f"{h:02d}:{m:02d}:{s:02d}"


class Progress:
    """Counts answers and calls; renders the progress line (calls, rate, answers by status, ETA)."""

    def __init__(
        self, quota_rate: float, n_keys: int, qps: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.quota_rate = quota_rate
        self.n_keys, self.qps = n_keys, qps
        self.clock = clock
        self.started = clock()
        self.total: int | None = None
        self.answers: collections.Counter = collections.Counter()
        self._samples: collections.deque[tuple[float, int]] = collections.deque([(self.started, 0)])

    def record(self, answer: Answer) -> None:
        self.answers[answer.status if answer.final else "gave_up"] += 1

    def line(self, calls: int) -> str:
        now = self.clock()
        self._samples.append((now, calls))
        while len(self._samples) > 2 and self._samples[0][0] < now - 60:
            self._samples.popleft()
        t0, c0 = self._samples[0]
        rate = (calls - c0) / (now - t0) if now > t0 else 0.0
        done = sum(self.answers.values())
        by_status = " ".join(
            f"{k} {self.answers.get(k, 0)}" for k in ("ok", "not_found", "failed", "gave_up")
        )
        calls_per_photo = calls / done if done else 1.0
        if self.total is None:
            where, eta = f"{done} photos", "unknown"
        else:
            left = max(0, self.total - done)
            where = f"{done}/{self.total} photos ({100.0 * done / max(1, self.total):.1f}%)"
            eta = format_duration(left * max(1.0, calls_per_photo) / self.quota_rate)
        return (
            f"harvest: {where}, {calls} calls, {rate:.2f} calls/s; {by_status}; "
            f"time left {eta} at {self.quota_rate:.2f} calls/s ({self.n_keys} key(s) x {self.qps:g})"
        )


class HarvestService:
    """Fetches photos with one client and one journal, from a background event loop."""

    def __init__(self, config: HarvestConfig, keys: list[str] | None = None):
        self.config = config
        keys = load_api_keys(config.api_key_file) if keys is None else keys
        pool = None
        if config.shared_limiter:
            from imagenet_captions.flickr.redis_limiter import REDIS_ENV, RedisKeyPool

            url = os.environ.get(REDIS_ENV)
            if not url:
                raise UsageError(f"--shared-limiter needs the Redis URL in ${REDIS_ENV}")
            pool = RedisKeyPool(url, keys, config.qps, config.burst)
        self.client = FlickrClient(
            keys,
            config.endpoint,
            qps=config.qps,
            burst=config.burst,
            concurrency=config.concurrency,
            retry=RetryPolicy(config.max_attempts, config.base_delay, config.max_delay, config.timeout),
            pool=pool,
        )
        del keys  # only the client holds them
        self.redact = self.client.redact
        self.journal = JournalWriter(
            config.responses_dir,
            config.run_id,
            config.fsync_every,
            config.fsync_interval,
            config.rotate_every,
        )
        self.progress = Progress(self.client.pool.total_rate, self.client.n_keys, config.qps)
        self.fatal: InvalidKeyError | None = None
        self._done: dict[int, tuple[int, str, int | None]] = {}
        self._inflight: dict[int, concurrent.futures.Future] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="flickr-harvest", daemon=True)
        self._thread.start()
        self._ready.wait()

    # -- the loop ------------------------------------------------------------------------------
    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self.client.__aenter__())
        self._progress_task = self._loop.create_task(self._report_progress())
        self._ready.set()
        self._loop.run_forever()

    async def _report_progress(self) -> None:
        while True:
            await asyncio.sleep(self.config.progress_every)
            log.info(self.progress.line(self.client.stats.calls))

    async def _fetch(self, photo_id: int, image_ids: list[str]) -> tuple[int, str, int | None]:
        if self.fatal is not None:
            raise self.fatal
        try:
            answer = await self.client.get_info(photo_id)
        except InvalidKeyError as e:
            self.fatal = e
            raise
        stored = StoredAnswer(
            photo_id=photo_id,
            image_ids=sorted(image_ids),
            status=answer.status,
            code=answer.code,
            error=answer.error,
            fetched_at=answer.fetched_at,
            attempts=answer.attempts,
            run_id=self.config.run_id,
            raw=answer.raw,
        )
        # The answer counts as done only once it is fsync'd in the journal.
        await asyncio.wrap_future(self.journal.append(stored))
        self.progress.record(answer)
        result = (photo_id, answer.status if answer.final else "gave_up", answer.code)
        with self._lock:
            self._done[photo_id] = result
        return result

    # -- the API for DoFns (any thread) --------------------------------------------------------
    def set_total(self, total: int) -> None:
        self.progress.total = total

    def submit(self, photo_id: int, image_ids: list[str]) -> concurrent.futures.Future:
        """A future of ``(photo_id, status, code)``; a photo answered in this run is not asked again."""
        with self._lock:
            if photo_id in self._done:
                fut: concurrent.futures.Future = concurrent.futures.Future()
                fut.set_result(self._done[photo_id])
                return fut
            if photo_id in self._inflight and not self._inflight[photo_id].done():
                return self._inflight[photo_id]
            fut = asyncio.run_coroutine_threadsafe(self._fetch(photo_id, list(image_ids)), self._loop)
            self._inflight[photo_id] = fut
            fut.add_done_callback(lambda _f: self._forget(photo_id))
            return fut

    def _forget(self, photo_id: int) -> None:
        with self._lock:
            self._inflight.pop(photo_id, None)

    def call_stats(self) -> dict[str, Any]:
        return {
            "calls": self.client.stats.calls,
            "by_outcome": dict(sorted(self.client.stats.by_outcome.items())),
        }

    def progress_line(self) -> str:
        return self.progress.line(self.client.stats.calls)

    def close(self) -> None:
        """Wait for calls in flight, close the client, then flush, close and compact the journal."""
        with self._lock:
            pending = list(self._inflight.values())
        concurrent.futures.wait(pending)

        async def shutdown() -> None:
            self._progress_task.cancel()
            await self.client.__aexit__(None, None, None)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self.journal.close()


_services: dict[tuple[str, str], HarvestService] = {}
_services_lock = threading.Lock()


def get_service(config: HarvestConfig) -> HarvestService:
    """The process's service for this store and run (created on first use)."""
    with _services_lock:
        key = (config.responses_dir, config.run_id)
        if key not in _services:
            _services[key] = HarvestService(config)
        return _services[key]


def close_service(config: HarvestConfig) -> HarvestService | None:
    """Close and forget the service of this store and run, if one was created in this process."""
    with _services_lock:
        service = _services.pop((config.responses_dir, config.run_id), None)
    if service is not None:
        service.close()
    return service
