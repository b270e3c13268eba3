"""What a ``flickr.photos.getInfo`` answer means: final, passing (retry) or fatal, and how to retry.

Why the rules look the way they do: Flickr answers API errors as HTTP 200 with
``{"stat": "fail", "code": N, "message": ...}``. Code 1 (photo not found) is a final answer for that
photo; 105 (service unavailable) and 106 (write operation failed), HTTP 5xx, 429 (whose body is an
HTML page, not JSON), truncated bodies and broken JSON are passing trouble (:class:`Transient`),
retried with capped exponential backoff and full jitter, honouring ``Retry-After``; code 100
(invalid key) stops the whole job, since every further call would fail too; any other code is
final for that photo (``failed``, with the code). A photo whose retries run out is recorded as
``failed`` with no code and ``error="gave_up: ..."``: not a final answer, so a rerun asks again.

Both clients (:mod:`.client` on aiohttp, :mod:`.flickrapi_fetcher` for OAuth-signed calls) follow
these rules through :func:`classify_response`, so their answers are the same. No I/O here.
"""

from __future__ import annotations

import collections
import email.utils
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

from imagenet_captions.flickr.keys import Redactor
from imagenet_captions.flickr.scrub import scrub_json, scrub_text

#: Flickr error codes that mean "try again later".
RETRY_CODES = frozenset({105, 106})
NOT_FOUND_CODE = 1
INVALID_KEY_CODE = 100
_INT32 = (-(2**31), 2**31 - 1)


class InvalidKeyError(Exception):
    """Flickr said code 100 (invalid API key): the job must stop. The message names the key's
    position, never the key."""


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

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """The wait after failed call ``attempt``: capped exponential backoff with full jitter, so
        the callers that failed together (a 5xx burst) do not come back together."""
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


class Transient(Exception):
    """A passing failure: the call is retried (after ``retry_after`` at least, when the server
    said); ``refused`` marks an over-quota answer, which slows the key down; ``outcome`` is the
    name it is counted under."""

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


class KeyRejected(Exception):
    """Code 100: the caller turns it into an InvalidKeyError naming the key's position."""


def classify_response(
    photo_id: int, status: int, body: bytes, retry_after: float | None, redact: Redactor
) -> tuple[Answer, str]:
    """One HTTP answer to getInfo as ``(Answer, outcome)``; raises ``Transient`` (retry) or
    ``KeyRejected`` (code 100). Shared by the aiohttp client and the flickrapi fetcher."""
    fetched_at = time.time()
    if status == 429:
        raise Transient("HTTP 429 (over the quota)", retry_after, refused=True, outcome="http_429")
    if status != 200:
        raise Transient(
            f"HTTP {status}", retry_after, outcome="http_5xx" if status >= 500 else f"http_{status}"
        )
    try:
        text = body.decode("utf-8")
        data = json.loads(text)
    # ValueError besides JSONDecodeError: a number of more than 4,300 digits; RecursionError: nested too deep.
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Transient("broken JSON body", outcome="bad_json") from None
    if not isinstance(data, dict) or data.get("stat") not in ("ok", "fail"):
        raise Transient("JSON without stat", outcome="bad_json")
    # An answer is stored, and the key must never reach the store in any form a reader decodes.
    if data["stat"] == "fail":
        code = _as_int(data.get("code"))
        if code == INVALID_KEY_CODE:
            raise KeyRejected()
        if code in RETRY_CODES:
            raise Transient(f"Flickr code {code}", retry_after, outcome=f"code_{code}")
        if code is not None and not _INT32[0] <= code <= _INT32[1]:  # the store's code column is int32
            raise Transient("an error code that is not one", outcome="bad_json")
        if code == NOT_FOUND_CODE:
            return Answer(photo_id, "not_found", code, None, scrub_json(text, data, redact), fetched_at), "not_found"
        message = scrub_text(str(data.get("message", "")), redact)[:200]
        return Answer(
            photo_id, "failed", code, f"Flickr code {code}: {message}", scrub_json(text, data, redact), fetched_at
        ), "failed"
    photo = data.get("photo")
    if not isinstance(photo, dict) or _as_int(photo.get("id")) != photo_id:
        raise Transient("answer is not about the photo asked for", outcome="bad_json")
    return Answer(photo_id, "ok", None, None, scrub_json(text, data, redact), fetched_at), "ok"


def gave_up(photo_id: int, error: str, attempts: int) -> Answer:
    """The answer for a photo whose retries ran out: ``failed`` with no Flickr code; a rerun asks again."""
    return Answer(photo_id, "failed", None, error, None, time.time(), attempts)


def _as_int(value: Any) -> int | None:
    """Flickr's numbers are sometimes strings."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
