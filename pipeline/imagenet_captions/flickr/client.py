"""A Flickr REST client for ``flickr.photos.getInfo`` on aiohttp: many calls in flight, each one
spaced by the key's quota, retried when the failure is passing, and never leaking the key.

What an answer means and when to retry is :mod:`.protocol`; this module is the concurrency: a
semaphore bounds the calls in flight, each key's first call goes alone (its probe), later calls
take their turn from the key pool (:mod:`.limiter`, or a shared Redis pool), and an invalid key
wakes every waiting call so none is sent after it.

Secrets: the key is sent in the POST body (Flickr's REST endpoint takes GET or POST), so it is not
in the URL that aiohttp puts in its exception messages; and every message that leaves this module
(log line, exception, ``Answer.error``) goes through :class:`~.keys.Redactor` anyway. The key is
read where the client is created (:func:`~.keys.load_api_keys`), from the environment or a file.

The names of :mod:`.keys`, :mod:`.protocol` and :mod:`.flickrapi_fetcher` that callers (tests,
``docs/harvest.md``) know as ``client.X`` are importable from here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Sequence
from typing import Any

import aiohttp

from imagenet_captions.errors import UsageError
from imagenet_captions.flickr.flickrapi_fetcher import FlickrapiFetcher
from imagenet_captions.flickr.keys import KEY_ENV, Redactor, load_api_keys
from imagenet_captions.flickr.limiter import KeyPool
from imagenet_captions.flickr.protocol import (
    Answer,
    CallStats,
    InvalidKeyError,
    KeyRejected,
    RetryPolicy,
    Transient,
    classify_response,
    gave_up,
    parse_retry_after,
)

__all__ = [
    "DEFAULT_ENDPOINT",
    "KEY_ENV",
    "Answer",
    "CallStats",
    "FlickrClient",
    "FlickrapiFetcher",
    "InvalidKeyError",
    "Redactor",
    "RetryPolicy",
    "classify_response",
    "gave_up",
    "load_api_keys",
    "parse_retry_after",
]

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://api.flickr.com/services/rest/"


class FlickrClient:
    """``async with FlickrClient(keys, ...) as c: answer = await c.get_info(photo_id)``.

    ``qps`` is calls per second *per key*; ``concurrency`` bounds the calls in flight (by default
    enough to keep the quota busy while calls wait out a whole timeout).
    """

    def __init__(
        self,
        keys: Sequence[str],
        endpoint: str = DEFAULT_ENDPOINT,
        qps: float = 0.95,
        burst: int = 1,
        concurrency: int | None = None,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        pool: Any = None,
    ):
        if not keys:
            raise UsageError(f"no Flickr API key: set {KEY_ENV} or pass --api-key-file")
        self._keys = list(keys)
        self.redact = Redactor(self._keys)
        self.endpoint = endpoint
        self.retry = retry or RetryPolicy()
        # The local pool, or a shared one (redis_limiter.RedisKeyPool) for distributed workers.
        self.pool = pool if pool is not None else KeyPool(len(self._keys), qps, burst)
        self.concurrency = concurrency or int(math.ceil(self.pool.total_rate * self.retry.timeout)) + 4
        self.rng = rng or random.Random()
        self.stats = CallStats()
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        #: Set when Flickr says a key is invalid: every later call is refused here, unsent.
        self.fatal: InvalidKeyError | None = None
        self._stop: asyncio.Event | None = None

    @property
    def n_keys(self) -> int:
        return len(self._keys)

    async def __aenter__(self) -> FlickrClient:
        self._slots = asyncio.Semaphore(self.concurrency)
        self._stop = asyncio.Event()
        self._warm = [False] * len(self._keys)
        self._probing = [False] * len(self._keys)
        self._warm_event = asyncio.Event()
        trace = aiohttp.TraceConfig()
        trace.on_request_headers_sent.append(self._headers_sent)
        self._session = aiohttp.ClientSession(
            trace_configs=[trace],
            timeout=aiohttp.ClientTimeout(total=self.retry.timeout),
            connector=aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=self.concurrency),
            headers={"User-Agent": "imagenet-captions harvest (+https://github.com/)"},
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if hasattr(self.pool, "aclose"):
            await self.pool.aclose()

    async def get_info(self, photo_id: int) -> Answer:
        """The photo's answer after retries. Raises :class:`InvalidKeyError` (stop the job)."""
        assert self._slots is not None, "use the client as an async context manager"
        last = "no call made"
        async with self._slots:
            for attempt in range(1, self.retry.max_attempts + 1):
                index, sent, probe = await self._slot()
                try:
                    try:
                        answer = await self._call(photo_id, index, sent)
                    finally:
                        if probe:
                            self._warmed(index, sent)
                except Transient as t:
                    last = t.reason
                    if t.refused:
                        await self.pool.apenalise(index)
                    if attempt == self.retry.max_attempts:
                        break
                    delay = self.retry.backoff(attempt, self.rng)
                    if t.retry_after is not None:
                        delay = max(delay, t.retry_after)
                    log.debug("photo %d: %s; retry %d in %.2fs", photo_id, t.reason, attempt, delay)
                    await self._sleep(delay)
                    continue
                answer.attempts = attempt
                return answer
        return gave_up(photo_id, self.redact(f"gave_up: {last}"), self.retry.max_attempts)

    async def _slot(self) -> tuple[int, list[float], bool]:
        """Wait for the next call's turn: ``(key index, guard cell, is this the key's probe)``.

        A key's first call (its probe) goes alone, and the key's schedule starts when it
        returns. Why: a first call is slow to arrive (new connection, TLS, a cold server path), and
        the calls spaced after it would otherwise reach the server bunched against it, over a
        sliding-window quota; and an invalid key is found by one call, not by a burst of them.
        """
        assert self._stop is not None
        n = len(self._keys)
        while True:
            if self.fatal is not None:
                raise self.fatal
            for i in range(n):
                if not self._warm[i] and not self._probing[i]:
                    self._probing[i] = True
                    return i, self.pool.mark_sent(i), True
            warm = [i for i in range(n) if self._warm[i]]
            if warm:
                break
            waiter = asyncio.ensure_future(self._warm_event.wait())
            stopper = asyncio.ensure_future(self._stop.wait())
            try:
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                stopper.cancel()
        index, at = await self.pool.areserve(warm)
        await self._sleep(at - self.pool.clock())
        while (wait := self.pool.guard_delay(index)) > 0 and self.fatal is None:
            await self._sleep(wait)
        if self.fatal is not None:  # another call found a key invalid: no more calls
            raise self.fatal
        return index, self.pool.mark_sent(index), False

    def _warmed(self, index: int, sent: list[float]) -> None:
        # The probe reached the server no later than its answer came back: count it from then.
        self.pool.sent_at(sent, self.pool.clock())
        self.pool.restart(index)
        self._warm[index] = True
        self._warm_event.set()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the job must stop (an invalid key): calls waiting for a
        slot or a backoff then end without another call."""
        if seconds <= 0 or self._stop is None:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def _set_fatal(self, error: InvalidKeyError) -> InvalidKeyError:
        self.fatal = error
        if self._stop is not None:
            self._stop.set()
        return error

    async def _headers_sent(self, session: object, ctx: object, params: object) -> None:
        cell = getattr(ctx, "trace_request_ctx", None)
        if isinstance(cell, list):
            self.pool.sent_at(cell, self.pool.clock())

    async def _call(self, photo_id: int, index: int, sent: list[float] | None = None) -> Answer:
        assert self._session is not None
        form = {
            "method": "flickr.photos.getInfo",
            "api_key": self._keys[index],
            "photo_id": str(photo_id),
            "format": "json",
            "nojsoncallback": "1",
        }
        try:
            async with self._session.post(self.endpoint, data=form, trace_request_ctx=sent) as resp:
                body = await resp.read()
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except asyncio.TimeoutError:
            self.stats.add("timeout")
            raise Transient("timeout") from None
        except aiohttp.ClientPayloadError as e:
            self.stats.add("truncated")
            raise Transient(self.redact(f"truncated body: {type(e).__name__}")) from None
        except (aiohttp.ClientError, OSError) as e:
            self.stats.add("connection")
            raise Transient(self.redact(f"connection error: {type(e).__name__}: {e}")) from None
        try:
            answer, outcome = classify_response(photo_id, status, body, retry_after, self.redact)
        except Transient as t:
            self.stats.add(t.outcome)
            raise
        except KeyRejected:
            self.stats.add("code_100")
            raise self._set_fatal(
                InvalidKeyError(
                    f"Flickr says API key #{index + 1} of {len(self._keys)} is invalid (code 100): "
                    "check FLICKR_API_KEY / --api-key-file"
                )
            ) from None
        self.stats.add(outcome)
        return answer
