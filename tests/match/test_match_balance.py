"""Balancing: the exact rows kept, computed here literally from the stated formula; the targets."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from imagenet_captions.classes import wnids
from imagenet_captions.errors import OptionError, UsageError
from imagenet_captions.match.balance import (
    ClassBalance,
    balance_table,
    select,
    select_stream,
    targets_from,
)

LION, TIGER = "n02129165", "n02129604"


def expected(wnid: str, keys: list[str], target: int, seed: int) -> tuple[list[str], list[str]]:
    """docs/match.md's rule, word for word: the min(n, target) keys with the smallest
    sha256(f"{seed}:{key}:{wnid}").hexdigest() are kept."""
    ranked = sorted(keys, key=lambda k: hashlib.sha256(f"{seed}:{k}:{wnid}".encode()).hexdigest())
    return sorted(ranked[:target]), ranked[target:]


KEYS = [f"{i:09d}" for i in range(200)]


@pytest.mark.parametrize("seed", [0, 1, 12345])
@pytest.mark.parametrize("target", [0, 1, 7, 199, 200, 500])
def test_the_kept_rows_are_those_with_the_smallest_hashes(seed: int, target: int):
    kept, over = select(LION, KEYS, target, seed)
    want_kept, want_over = expected(LION, KEYS, target, seed)
    assert kept == want_kept
    assert sorted(over) == sorted(want_over) and len(over) == len(KEYS) - len(kept)


def test_a_pinned_selection():
    """The formula itself, pinned: a change to the hash's text or order fails here."""
    assert select(LION, ["a", "b", "c", "d", "e"], 2, 0)[0] == expected(LION, list("abcde"), 2, 0)[0]
    assert select(LION, ["a", "b", "c", "d", "e"], 2, 0)[0] == ["c", "d"]


def test_the_order_does_not_depend_on_arrival_and_differs_per_class_and_seed():
    assert select(LION, KEYS, 20, 0)[0] == select(LION, list(reversed(KEYS)), 20, 0)[0]
    assert select(LION, KEYS, 20, 0)[0] != select(TIGER, KEYS, 20, 0)[0]
    assert select(LION, KEYS, 20, 0)[0] != select(LION, KEYS, 20, 1)[0]


def test_over_quota_keys_are_given_as_the_candidates_stream_in():
    """A class's candidates are never held: with the heap full, the first rejection comes out
    before the candidates run out (a million-row class costs its target in memory)."""
    pulled = 0

    def candidates():
        nonlocal pulled
        for k in KEYS:
            pulled += 1
            yield k

    stream = select_stream(LION, candidates(), 5, 0)
    keep, key = next(stream)
    assert keep is False and pulled <= 6
    rest = list(stream)
    assert [k for keep, k in rest if keep] == expected(LION, KEYS, 5, 0)[0]
    assert [keep for keep, _ in rest][-5:] == [True] * 5


def test_imagenet_captions_targets_are_its_own_counts():
    t = targets_from("imagenet-captions", wnids())
    assert sum(t.values()) == 448_896 and sum(v > 0 for v in t.values()) == 999
    assert t["n04399382"] == 0  # teddy bear: no record
    assert t["n01440764"] == 219  # tench, the first line of the source
    assert targets_from("imagenet-captions", ["n00004475", "n01440764"]) == {"n00004475": 0, "n01440764": 219}


def test_a_targets_file_and_a_cap(tmp_path: Path):
    f = tmp_path / "targets.txt"
    f.write_text(f"# wanted\n{LION} 10\n{TIGER}\t3\n\n", encoding="utf-8")
    assert targets_from(str(f), [LION, TIGER, "n01440764"]) == {LION: 10, TIGER: 3, "n01440764": 0}
    assert targets_from(str(f), [LION, TIGER], max_per_class=5) == {LION: 5, TIGER: 3}
    assert targets_from(None, [LION, TIGER], max_per_class=5) == {LION: 5, TIGER: 5}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (f"{LION}\n", "line 1: expected 'wnid count'"),
        ("lion 3\n", "line 1: 'lion' is not a wnid"),
        (f"{LION} -3\n", "line 1: '-3' is not a count"),
        (f"{LION} 3.5\n", "line 1: '3.5' is not a count"),
        (f"{LION} 1\n{LION} 2\n", "line 2: n02129165 is listed twice"),
        ("\n# none\n", "lists no class"),
    ],
)
def test_a_bad_targets_file_is_one_line_naming_it(tmp_path: Path, content: str, message: str):
    f = tmp_path / "targets.txt"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError, match=message) as e:
        targets_from(str(f), [LION])
    assert str(f) in str(e.value)


def test_bad_balancing_options_are_one_line(tmp_path: Path):
    with pytest.raises(UsageError, match="--balance-to: cannot read"):
        targets_from(str(tmp_path / "none.txt"), [LION])
    with pytest.raises(OptionError, match="--max-per-class must be an integer of at least 0"):
        targets_from(None, [LION], max_per_class=-1)
    with pytest.raises(OptionError, match="needs --balance-to or --max-per-class"):
        targets_from(None, [LION])


def test_the_balance_table_gives_target_found_kept_and_shortfall():
    rows = balance_table({LION: 10, TIGER: 3}, {LION: 4, TIGER: 9})
    assert rows == [ClassBalance(LION, 10, 4, 4, 6), ClassBalance(TIGER, 3, 9, 3, 0)]
