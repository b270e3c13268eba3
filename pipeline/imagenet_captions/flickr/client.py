"""A Flickr REST client for ``flickr.photos.getInfo`` on aiohttp: many calls in flight, each one
spaced by the key's quota, retried when the failure is passing, and never leaking the key.

Why the error handling looks the way it does: Flickr answers API errors as HTTP 200 with
``{"stat": "fail", "code": N, "message": ...}``. Code 1 (photo not found) is a final answer for that
photo; 105 (service unavailable) and 106 (write operation failed), HTTP 5xx, 429 (whose body is an
HTML page, not JSON), timeouts, connection resets, truncated bodies and broken JSON are passing
trouble and are retried with capped exponential backoff and full jitter, honouring ``Retry-After``;
code 100 (invalid key) stops the whole job at once, since every further call would fail too; any
other code is final for that photo (``failed``, with the code). A photo whose retries run out is
recorded as ``failed`` with no code and ``error="gave_up: ..."``: it is not a final answer, and a
rerun asks again.

Secrets: the key is sent in the POST body (Flickr's REST endpoint takes GET or POST), so it is not
in the URL that aiohttp puts in its exception messages; and every message that leaves this module
(log line, exception, ``Answer.error``) goes through :class:`Redactor` anyway. The key is read
where the client is created (:func:`load_api_keys`), from the environment or a file, never from a
pipeline option or a command-line argument.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import email.utils
import json
import logging
import math
import os
import random
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from imagenet_captions.errors import UsageError
from imagenet_captions.flickr.limiter import Gcra, KeyPool

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://api.flickr.com/services/rest/"
KEY_ENV = "FLICKR_API_KEY"
#: Flickr error codes that mean "try again later".
RETRY_CODES = frozenset({105, 106})
NOT_FOUND_CODE = 1
INVALID_KEY_CODE = 100


class InvalidKeyError(Exception):
    """Flickr said code 100 (invalid API key): the job must stop. The message names the key's
    position, never the key."""


def load_api_keys(key_file: str | None = None, environ: Mapping[str, str] | None = None) -> list[str]:
    """The API keys: from ``key_file`` (one per line, ``#`` comments) or ``$FLICKR_API_KEY``
    (comma-separated). Several keys are for teams whose keys are separately registered."""
    environ = os.environ if environ is None else environ
    if key_file:
        try:
            with open(key_file, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise UsageError(f"cannot read the API key file {key_file}: {e.strerror}") from None
        keys = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
        source = f"the API key file {key_file}"
    else:
        keys = [k.strip() for k in environ.get(KEY_ENV, "").split(",") if k.strip()]
        source = f"${KEY_ENV}"
    if not keys:
        raise UsageError(
            f"no Flickr API key in {source}: set {KEY_ENV} (comma-separated) or pass --api-key-file"
        )
    if len(set(keys)) != len(keys):
        raise UsageError(f"{source} lists the same API key twice")
    return keys


class Redactor:
    """Removes secrets from text: each key verbatim, and any ``api_key=...`` value whatever it is."""

    _PARAM = re.compile(r"(api_key=)[^&\s'\"]+", re.IGNORECASE)

    def __init__(self, secrets: Sequence[str]):
        # Longest first, so that a key that contains another is removed whole.
        self.secrets = sorted((s for s in secrets if s), key=len, reverse=True)

    def __call__(self, text: object) -> str:
        out = str(text)
        for s in self.secrets:
            out = out.replace(s, "[REDACTED]")
        return self._PARAM.sub(r"\1[REDACTED]", out)


@dataclass
class Answer:
    """One photo's answer. ``status``: ``ok`` | ``not_found`` | ``failed``; ``raw`` is Flickr's JSON
    text as received (ok and API errors), ``fetched_at`` seconds since the epoch (UTC)."""

    photo_id: int
    status: str
    code: int | None = None
    error: str | None = None
    raw: str | None = None
    fetched_at: float = 0.0
    attempts: int = 0

    @property
    def final(self) -> bool:
        """A final answer is never asked again (unless refreshed); a gave-up failure is."""
        return self.status != "failed" or self.code is not None


@dataclass
class RetryPolicy:
    """Retries of passing failures. ``max_attempts`` counts every call for one photo."""

    max_attempts: int = 8
    base_delay: float = 1.0
    max_delay: float = 120.0
    timeout: float = 30.0


class _Transient(Exception):
    def __init__(
        self, reason: str, retry_after: float | None = None, refused: bool = False, outcome: str = ""
    ):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.refused = refused
        self.outcome = outcome or "transient"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class CallStats:
    """What happened to every call (attempt), for progress lines and the benchmark."""

    calls: int = 0
    by_outcome: collections.Counter = field(default_factory=collections.Counter)

    def add(self, outcome: str) -> None:
        self.calls += 1
        self.by_outcome[outcome] += 1


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
                except _Transient as t:
                    last = t.reason
                    if t.refused:
                        await self.pool.apenalise(index)
                    if attempt == self.retry.max_attempts:
                        break
                    cap = min(self.retry.max_delay, self.retry.base_delay * 2 ** (attempt - 1))
                    delay = self.rng.uniform(0, cap)
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
            raise _Transient("timeout") from None
        except aiohttp.ClientPayloadError as e:
            self.stats.add("truncated")
            raise _Transient(self.redact(f"truncated body: {type(e).__name__}")) from None
        except (aiohttp.ClientError, OSError) as e:
            self.stats.add("connection")
            raise _Transient(self.redact(f"connection error: {type(e).__name__}: {e}")) from None
        try:
            answer, outcome = classify_response(photo_id, status, body, retry_after, self.redact)
        except _Transient as t:
            self.stats.add(t.outcome)
            raise
        except _KeyRejected:
            self.stats.add("code_100")
            raise self._set_fatal(
                InvalidKeyError(
                    f"Flickr says API key #{index + 1} of {len(self._keys)} is invalid (code 100): "
                    "check FLICKR_API_KEY / --api-key-file"
                )
            ) from None
        self.stats.add(outcome)
        return answer


class _KeyRejected(Exception):
    """Code 100: the caller turns it into an InvalidKeyError naming the key's position."""


def classify_response(
    photo_id: int, status: int, body: bytes, retry_after: float | None, redact: Redactor
) -> tuple[Answer, str]:
    """One HTTP answer to getInfo as ``(Answer, outcome)``; raises ``_Transient`` (retry) or
    ``_KeyRejected`` (code 100). Shared by the aiohttp client and :class:`FlickrapiFetcher`."""
    fetched_at = time.time()
    if status == 429:
        raise _Transient("HTTP 429 (over the quota)", retry_after, refused=True, outcome="http_429")
    if status != 200:
        raise _Transient(
            f"HTTP {status}", retry_after, outcome="http_5xx" if status >= 500 else f"http_{status}"
        )
    try:
        text = body.decode("utf-8")
        data = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _Transient("broken JSON body", outcome="bad_json") from None
    if not isinstance(data, dict) or data.get("stat") not in ("ok", "fail"):
        raise _Transient("JSON without stat", outcome="bad_json")
    # Redacted too: an answer is stored, and the key must never reach the store.
    if data["stat"] == "fail":
        code = _as_int(data.get("code"))
        if code == INVALID_KEY_CODE:
            raise _KeyRejected()
        if code in RETRY_CODES:
            raise _Transient(f"Flickr code {code}", retry_after, outcome=f"code_{code}")
        if code == NOT_FOUND_CODE:
            return Answer(photo_id, "not_found", code, None, redact(text), fetched_at), "not_found"
        message = redact(str(data.get("message", "")))[:200]
        return Answer(
            photo_id, "failed", code, f"Flickr code {code}: {message}", redact(text), fetched_at
        ), "failed"
    photo = data.get("photo")
    if not isinstance(photo, dict) or _as_int(photo.get("id")) != photo_id:
        raise _Transient("answer is not about the photo asked for", outcome="bad_json")
    return Answer(photo_id, "ok", None, None, redact(text), fetched_at), "ok"


class FlickrapiFetcher:
    """The alternative client, for users who need OAuth-signed calls: ``flickrapi`` does the
    signing and the HTTP; the quota, retries, classification and redaction are ours, so its
    answers are the same :class:`Answer` objects (one call at a time: it is synchronous).

        flickr = flickrapi.FlickrAPI(key, secret, format="json")
        flickr.authenticate_via_browser(perms="read")
        answer = FlickrapiFetcher(flickr).get_info(3743398102)
    """

    def __init__(self, flickr: Any, qps: float = 0.95, retry: RetryPolicy | None = None):
        self.flickr = flickr
        self.limiter = Gcra(qps)
        self.retry = retry or RetryPolicy()
        self.redact = Redactor(
            [
                str(flickr.flickr_oauth.oauth.client.client_key or ""),
                str(flickr.flickr_oauth.oauth.client.client_secret or ""),
            ]
        )
        self.stats = CallStats()
        self.rng = random.Random()

    def get_info(self, photo_id: int) -> Answer:
        import flickrapi.exceptions
        import requests

        last = "no call made"
        for attempt in range(1, self.retry.max_attempts + 1):
            time.sleep(max(0.0, self.limiter.reserve() - time.monotonic()))
            try:
                body = self.flickr.photos.getInfo(
                    photo_id=str(photo_id), format="json", nojsoncallback="1", timeout=self.retry.timeout
                )
                answer, outcome = classify_response(photo_id, 200, bytes(body), None, self.redact)
            except _KeyRejected:
                self.stats.add("code_100")
                raise InvalidKeyError("Flickr says the API key is invalid (code 100)") from None
            except _Transient as t:
                self.stats.add(t.outcome)
                last = t.reason
            except (flickrapi.exceptions.FlickrError, requests.RequestException) as e:
                # flickrapi raises for any HTTP status but 200 (so no Retry-After here).
                self.stats.add("http_error")
                last = self.redact(f"{type(e).__name__}: {e}")
            else:
                self.stats.add(outcome)
                answer.attempts = attempt
                return answer
            if attempt < self.retry.max_attempts:
                cap = min(self.retry.max_delay, self.retry.base_delay * 2 ** (attempt - 1))
                time.sleep(self.rng.uniform(0, cap))
        return gave_up(photo_id, self.redact(f"gave_up: {last}"), self.retry.max_attempts)


def gave_up(photo_id: int, error: str, attempts: int) -> Answer:
    """The answer for a photo whose retries ran out: ``failed`` with no Flickr code; a rerun asks again."""
    return Answer(photo_id, "failed", None, error, None, time.time(), attempts)


def _as_int(value: Any) -> int | None:
    """Flickr's numbers are sometimes strings."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
