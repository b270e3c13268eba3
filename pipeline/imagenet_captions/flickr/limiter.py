"""The quota: a GCRA (generic cell rate algorithm) limiter per API key, and a pool of keys.

Flickr allows about 3,600 calls per hour per key, counted across every user and worker of that
key, so the limiter spaces *calls* (every attempt, retries included), not photos. GCRA keeps one
number per key, the theoretical arrival time (TAT) of the next call; a call may go at
``max(now, TAT - tolerance)`` and pushes TAT one emission interval further. Reserving a slot and
then sleeping until it (instead of polling) means that many coroutines waiting at once each get a
distinct slot, in order, and a late wake-up does not shift later slots: the long-run rate is exact
and the schedule never drifts above the rate.

``burst`` = 1 (the default) is strict spacing, the safest shape under a server that counts calls
in a sliding window. Several keys (separately registered, see the README) each have their own
budget; :class:`KeyPool` gives each call the key whose next slot comes first.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Sequence


class Gcra:
    """One key's budget: ``rate`` calls per second, ``burst`` calls allowed back to back."""

    def __init__(self, rate: float, burst: int = 1, clock: Callable[[], float] = time.monotonic):
        if rate <= 0:
            raise ValueError("rate must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.interval = 1.0 / rate
        self.tolerance = (burst - 1) * self.interval
        self.clock = clock
        self.tat: float | None = None

    def next_slot(self, now: float | None = None) -> float:
        """When the next call could go, without reserving it."""
        now = self.clock() if now is None else now
        if self.tat is None:
            return now
        return max(now, self.tat - self.tolerance)

    def reserve(self, now: float | None = None) -> float:
        """Reserve the next slot and return its time (may be in the future)."""
        now = self.clock() if now is None else now
        at = self.next_slot(now)
        tat = now if self.tat is None else self.tat
        self.tat = max(tat, at) + self.interval
        return at

    def penalise(self, seconds: float | None = None) -> None:
        """Push the schedule back (the server refused a call): one interval, or ``seconds``."""
        now = self.clock()
        base = now if self.tat is None else max(self.tat, now)
        self.tat = base + (self.interval if seconds is None else seconds)


class KeyPool:
    """Several keys, each with its own :class:`Gcra`; a call takes the key free soonest.

    Keys are held by index so that nothing here (or in a log line about the pool) is the key.
    """

    def __init__(self, n_keys: int, rate: float, burst: int = 1, clock: Callable[[], float] = time.monotonic):
        if n_keys < 1:
            raise ValueError("at least one API key is needed")
        self.clock = clock
        self.limiters = [Gcra(rate, burst, clock) for _ in range(n_keys)]
        # The guard (strict spacing only): any ``span`` consecutive calls of a key, timed when
        # they actually go, take at least ``span`` intervals. GCRA alone times the *slots*; a
        # call that wakes late (a busy event loop, a descheduled process) would otherwise go
        # close to the next one, and a server counting in a sliding window sees a burst.
        self.span = max(1, round(rate)) if burst == 1 else 0
        self._sent: list[collections.deque[list[float]]] = [
            collections.deque(maxlen=self.span or 1) for _ in range(n_keys)
        ]

    @property
    def total_rate(self) -> float:
        return sum(1.0 / g.interval for g in self.limiters)

    def reserve(self, among: Sequence[int] | None = None) -> tuple[int, float]:
        """Pick a key (of ``among``, default all) and reserve its next slot: ``(index, time)``."""
        now = self.clock()
        candidates = range(len(self.limiters)) if among is None else among
        index = min(candidates, key=lambda i: self.limiters[i].next_slot(now))
        return index, self.limiters[index].reserve(now)

    async def areserve(self, among: Sequence[int] | None = None) -> tuple[int, float]:
        """:meth:`reserve`, as the client calls it (a shared pool reserves over the network)."""
        return self.reserve(among)

    async def apenalise(self, index: int, seconds: float | None = None) -> None:
        self.penalise(index, seconds)

    def restart(self, index: int) -> None:
        """Start a key's schedule afresh from now (after its first call, see the client)."""
        self.limiters[index].tat = None

    def guard_delay(self, index: int, now: float | None = None) -> float:
        """How long a call of key ``index`` must still wait for the guard (0: it may go now)."""
        if not self.span:
            return 0.0
        sent = self._sent[index]
        if len(sent) < self.span:
            return 0.0
        now = self.clock() if now is None else now
        return sent[0][0] + self.span * self.limiters[index].interval - now

    def mark_sent(self, index: int, now: float | None = None) -> list[float]:
        """Record that a call of key ``index`` goes now (call right before sending it). Returns
        the record's cell: :meth:`sent_at` moves it to when the request really left, which can be
        later (a new connection, a cold start), so the guard spaces wire times, not intentions."""
        cell = [self.clock() if now is None else now]
        self._sent[index].append(cell)
        return cell

    @staticmethod
    def sent_at(cell: list[float], when: float) -> None:
        cell[0] = max(cell[0], when)

    async def acquire(self) -> int:
        """Wait for a slot and the guard; returns the index of the key to call with."""
        index, at = self.reserve()
        delay = at - self.clock()
        if delay > 0:
            await asyncio.sleep(delay)
        while (delay := self.guard_delay(index)) > 0:
            await asyncio.sleep(delay)
        self.mark_sent(index)
        return index

    def penalise(self, index: int, seconds: float | None = None) -> None:
        self.limiters[index].penalise(seconds)
