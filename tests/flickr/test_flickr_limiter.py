"""The GCRA limiter and the key pool, on a fake clock (no sleeping, no timing asserts)."""

from __future__ import annotations

import pytest

from imagenet_captions.flickr.limiter import Gcra, KeyPool


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_strict_spacing_never_exceeds_the_rate_in_any_window() -> None:
    clock = Clock()
    g = Gcra(rate=10, clock=clock)
    slots = [g.reserve() for _ in range(100)]  # all asked at once
    gaps = [b - a for a, b in zip(slots, slots[1:], strict=False)]
    assert min(gaps) == pytest.approx(0.1)
    assert slots[0] == 100.0
    # any 1-second window holds at most 10 slots (less a hair for the sums of floats)
    assert max(sum(1 for s in slots if t <= s < t + 1.0 - 1e-9) for t in slots) == 10


def test_late_wakeups_do_not_shift_later_slots_and_idle_time_is_not_banked() -> None:
    clock = Clock()
    g = Gcra(rate=2, clock=clock)
    assert g.reserve() == 100.0
    clock.t = 100.2  # asked before the next slot: waits for it
    assert g.reserve() == pytest.approx(100.5)
    clock.t = 110.0  # idle for a while: no burst of saved-up calls afterwards
    assert g.reserve() == 110.0
    assert g.reserve() == pytest.approx(110.5)


def test_burst_allows_back_to_back_calls_then_the_rate() -> None:
    clock = Clock()
    g = Gcra(rate=1, burst=3, clock=clock)
    slots = [g.reserve() for _ in range(5)]
    assert slots[:3] == [100.0, 100.0, 100.0]
    assert slots[3] == pytest.approx(101.0) and slots[4] == pytest.approx(102.0)


def test_penalise_pushes_the_schedule_back() -> None:
    clock = Clock()
    g = Gcra(rate=10, clock=clock)
    g.reserve()
    g.penalise()
    assert g.reserve() == pytest.approx(100.2)
    g.penalise(5.0)
    assert g.reserve() == pytest.approx(105.3)


def test_pool_spreads_calls_over_keys_each_at_its_own_rate() -> None:
    clock = Clock()
    pool = KeyPool(3, rate=2, clock=clock)
    assert pool.total_rate == pytest.approx(6)
    got = [pool.reserve() for _ in range(30)]
    by_key: dict[int, list[float]] = {}
    for index, at in got:
        by_key.setdefault(index, []).append(at)
    assert sorted(by_key) == [0, 1, 2] and all(len(v) == 10 for v in by_key.values())
    for times in by_key.values():
        assert min(b - a for a, b in zip(times, times[1:], strict=False)) == pytest.approx(0.5)
    assert max(at for _, at in got) == pytest.approx(104.5)  # 30 calls at 6/s


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        Gcra(rate=0)
    with pytest.raises(ValueError):
        Gcra(rate=1, burst=0)
    with pytest.raises(ValueError):
        KeyPool(0, rate=1)


def test_the_guard_spaces_calls_by_when_they_really_go() -> None:
    """A call that wakes late must not go close to the next ones: any `span` consecutive calls of a
    key, timed when sent, take at least `span` intervals."""
    clock = Clock()
    pool = KeyPool(1, rate=4, clock=clock)
    assert pool.span == 4
    for t in (100.0, 100.25, 100.5):
        clock.t = t
        assert pool.guard_delay(0) == 0.0
        pool.mark_sent(0)
    clock.t = 100.9  # the 4th slot (100.75) woke 0.15 s late
    pool.mark_sent(0)
    clock.t = 101.0  # the 5th slot, on time: 4 calls ago was 100.0
    assert pool.guard_delay(0) == pytest.approx(0.0)  # 100.0 + 4 x 0.25 = 101.0: may go
    pool.mark_sent(0)
    clock.t = 101.25
    assert pool.guard_delay(0) == pytest.approx(0.0)
    pool.mark_sent(0)
    clock.t = 101.5  # 4 calls ago was 100.5 -> may go at 101.5
    assert pool.guard_delay(0) == pytest.approx(0.0)
    pool.mark_sent(0)
    clock.t = 101.6  # a burst attempt: 4 calls ago was 100.9 -> wait until 101.9
    assert pool.guard_delay(0) == pytest.approx(0.3)
    assert KeyPool(1, rate=4, burst=3).span == 0  # bursts asked for: no guard
