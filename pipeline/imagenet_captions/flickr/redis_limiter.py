"""A shared quota for distributed workers: the GCRA schedule of each key lives in Redis.

Flickr's quota belongs to the key, across every worker that uses it. :class:`KeyPool` holds it in
one process; :class:`RedisKeyPool` has the same interface but keeps each key's theoretical arrival
time (TAT) in Redis and reserves slots with a Lua script, which Redis runs atomically: the script
reads the TATs of the candidate keys, picks the key whose slot comes first, and moves its TAT on,
all with Redis's own clock (``TIME``), so workers on different machines need no synchronised
clocks. A worker then sleeps until its slot, exactly as with the local pool.

Redis never sees an API key: each key's schedule is stored under a fingerprint (the first 16 hex
digits of its SHA-256). The Redis URL, which may hold a password, comes from the environment
(``FLICKR_REDIS_URL``), like the key, and is redacted from error messages.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from typing import Any

REDIS_ENV = "FLICKR_REDIS_URL"
PREFIX = "imagenet-captions:gcra:"

# KEYS: the candidate keys' TAT entries. ARGV[1]: interval, ARGV[2]: tolerance (microseconds).
# Returns {index of the chosen key (0-based), delay until its slot in microseconds}.
RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local best, best_at, best_tat = 0, nil, nil
for i, k in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', k) or '0')
  if tat < now then tat = now end
  local at = tat - tolerance
  if at < now then at = now end
  if best_at == nil or at < best_at then
    best, best_at, best_tat = i, at, tat
  end
end
local new_tat = math.max(best_tat, best_at) + interval
redis.call('SET', KEYS[best], string.format('%d', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 60000)
return {best - 1, best_at - now}
"""

# KEYS[1]: one key's TAT entry; ARGV[1]: how far to push it back (microseconds).
PENALISE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 60000)
return 1
"""


def fingerprint(api_key: str) -> str:
    """What Redis stores instead of the key: a one-way digest, stable across workers."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:16]


def redact_url(text: str) -> str:
    """``redis://user:password@host`` -> ``redis://***@host``."""
    return re.sub(r"(rediss?|unix)://[^@/\s]*@", r"\1://***@", text)


class SharedLimiterError(Exception):
    """Redis could not be reached or refused the script; the harvest stops rather than guess."""


class RedisKeyPool:
    """:class:`~imagenet_captions.flickr.limiter.KeyPool`'s interface over a Redis schedule.

    Only the async methods (``areserve``, ``apenalise``) talk to Redis. The per-process guard and
    the probe's restart do not apply: other workers' calls are invisible to a local guard, and a
    shared schedule must not be restarted by one worker."""

    span = 0

    def __init__(self, url: str, api_keys: Sequence[str], rate: float, burst: int = 1, prefix: str = PREFIX):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.url = url
        self.names = [prefix + fingerprint(k) for k in api_keys]
        self.rate = rate
        self.interval_us = int(round(1e6 / rate))
        self.tolerance_us = (burst - 1) * self.interval_us
        self.clock = time.monotonic
        self._redis: Any = None
        self._reserve: Any = None
        self._penalise: Any = None

    @property
    def total_rate(self) -> float:
        return self.rate * len(self.names)

    def _connect(self) -> None:
        if self._redis is None:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(self.url)
            self._reserve = self._redis.register_script(RESERVE)
            self._penalise = self._redis.register_script(PENALISE)

    async def areserve(self, among: Sequence[int] | None = None) -> tuple[int, float]:
        """Pick a key (of ``among``) and reserve its next shared slot: ``(index, local time)``."""
        import redis.exceptions

        self._connect()
        candidates = list(range(len(self.names))) if among is None else list(among)
        try:
            choice, delay_us = await self._reserve(
                keys=[self.names[i] for i in candidates], args=[self.interval_us, self.tolerance_us]
            )
        except redis.exceptions.RedisError as e:
            raise SharedLimiterError(
                redact_url(f"shared limiter at {self.url}: {type(e).__name__}: {e}")
            ) from None
        return candidates[int(choice)], self.clock() + int(delay_us) / 1e6

    async def apenalise(self, index: int, seconds: float | None = None) -> None:
        import redis.exceptions

        self._connect()
        push = self.interval_us if seconds is None else int(seconds * 1e6)
        try:
            await self._penalise(keys=[self.names[index]], args=[push])
        except redis.exceptions.RedisError as e:
            raise SharedLimiterError(
                redact_url(f"shared limiter at {self.url}: {type(e).__name__}: {e}")
            ) from None

    def guard_delay(self, index: int, now: float | None = None) -> float:
        return 0.0

    def mark_sent(self, index: int, now: float | None = None) -> list[float]:
        return [self.clock() if now is None else now]

    @staticmethod
    def sent_at(cell: list[float], when: float) -> None:
        cell[0] = max(cell[0], when)

    def restart(self, index: int) -> None:
        """A shared schedule is not restarted by one worker's probe."""

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
