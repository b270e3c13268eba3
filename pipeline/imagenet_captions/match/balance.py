"""Balancing a matched corpus to per-class targets, one class at a time, in bounded memory.

``--balance-to imagenet-captions`` takes ImageNet-Captions' own count of each class as its target
(``data/imagenet_captions_class_counts.txt``), ``--balance-to FILE`` the user's ``wnid count``
lines, ``--max-per-class N`` a cap of N for every class (with both, the smaller). For class ``c``
the kept rows are the ``min(n_c, target_c)`` candidates with the smallest
``sha256(f"{seed}:{key}:{wnid}")``: an order no machine, runner or arrival order changes, and a
different one per class, so a row matched to two classes is not favoured in both.

:func:`select` is what the Beam layer calls once per class, on what a GroupByKey on the wnid
delivers: it keeps only the ``target`` smallest hashes in a heap, so a class with millions of
candidates costs memory for its target, not for its candidates.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

from imagenet_captions import classes as class_lists
from imagenet_captions import fsio
from imagenet_captions.errors import OptionError, UsageError

IMAGENET_CAPTIONS = "imagenet-captions"
_COUNTS = "imagenet_captions_class_counts.txt"


def order_key(seed: int, key: str, wnid: str) -> int:
    """The candidate's rank in its class: sha256 of ``f"{seed}:{key}:{wnid}"`` (UTF-8) read as a
    big-endian integer, which orders exactly as the hex digest does."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}:{wnid}".encode()).digest(), "big")


def targets_from(
    kind_or_file: str | None, classes: Sequence[str], max_per_class: int | None = None
) -> dict[str, int]:
    """Each class's target: from ImageNet-Captions' counts, a ``wnid count`` file, or ``max_per_class``
    alone (``kind_or_file`` None); with both, the smaller. A class the counts do not list has target
    0 (ImageNet-Captions has no row of teddy bear, nor of any class outside ILSVRC-2012)."""
    if max_per_class is not None and (isinstance(max_per_class, bool) or not isinstance(max_per_class, int)
                                      or max_per_class < 0):  # fmt: skip
        raise OptionError(f"--max-per-class must be an integer of at least 0, not {max_per_class!r}")
    if kind_or_file is None:
        if max_per_class is None:
            raise OptionError("balancing needs --balance-to or --max-per-class")
        return dict.fromkeys(classes, max_per_class)
    if kind_or_file == IMAGENET_CAPTIONS:
        text = resources.files("imagenet_captions.data").joinpath(_COUNTS).read_text(encoding="utf-8")
        counts = _parse_counts(text, f"--balance-to {IMAGENET_CAPTIONS}")
    else:
        counts = _parse_counts(_read_text(kind_or_file), f"--balance-to: {kind_or_file}")
    cap = max_per_class if max_per_class is not None else float("inf")
    return {w: int(min(counts.get(w, 0), cap)) for w in classes}


def _read_text(path: str) -> str:
    try:
        data = fsio.read_bytes(path)
    except OSError as e:
        raise UsageError(f"--balance-to: cannot read {path}: {e.strerror or e}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UsageError(f"--balance-to: {path} is not UTF-8 text (byte {e.start})") from None


def _parse_counts(text: str, where: str) -> dict[str, int]:
    """``wnid count`` a line (any whitespace between); blank lines and ``#`` comments are skipped."""
    counts: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 2:
            raise UsageError(f"{where} line {n}: expected 'wnid count'")
        wnid, count = words
        if not class_lists.is_wnid(wnid):
            raise UsageError(f"{where} line {n}: {wnid[:40]!r} is not a wnid (n + 8 digits)")
        if not (count.isascii() and count.isdigit()) or len(count) > 12:
            raise UsageError(f"{where} line {n}: {count[:40]!r} is not a count (0 or more, ASCII digits)")
        if wnid in counts:
            raise UsageError(f"{where} line {n}: {wnid} is listed twice")
        counts[wnid] = int(count)
    if not counts:
        raise UsageError(f"{where} lists no class")
    return counts


def select_stream(
    class_wnid: str, candidates: Iterable[str], target: int, seed: int
) -> Iterator[tuple[bool, str]]:
    """``(False, key)`` for each over-quota candidate as soon as it is known to be one (the heap of
    the ``target`` smallest is full and holds a smaller one), then ``(True, key)`` for each kept
    candidate, in key order. Memory: the heap (``target`` entries), never the candidates."""
    if target < 0:
        raise ValueError(f"target must be at least 0, not {target}")
    heap: list[tuple[int, str]] = []  # (-rank, key): heap[0] holds the largest rank kept so far
    for key in candidates:
        rank = order_key(seed, key, class_wnid)
        if len(heap) < target:
            heapq.heappush(heap, (-rank, key))
        elif heap and rank < -heap[0][0]:
            yield False, heapq.heapreplace(heap, (-rank, key))[1]
        else:
            yield False, key
    for key in sorted(k for _, k in heap):
        yield True, key


def select(class_wnid: str, candidates: Iterable[str], target: int, seed: int) -> tuple[list[str], list[str]]:
    """(kept keys sorted, over-quota keys) of one class. The over-quota list holds every rejected
    key; a caller that only counts them should iterate :func:`select_stream` instead."""
    kept: list[str] = []
    over: list[str] = []
    for keep, key in select_stream(class_wnid, candidates, target, seed):
        (kept if keep else over).append(key)
    return kept, over


@dataclass(frozen=True)
class ClassBalance:
    """One line of the report's balancing table."""

    wnid: str
    target: int
    found: int
    kept: int
    shortfall: int  # target - kept: rows the corpus lacks to reach the target


def balance_table(targets: Mapping[str, int], found: Mapping[str, int]) -> list[ClassBalance]:
    """Per class, in wnid order: its target, the candidates found, how many are kept, the shortfall."""
    rows = []
    for wnid in sorted(targets):
        n, target = found.get(wnid, 0), targets[wnid]
        kept = min(n, target)
        rows.append(ClassBalance(wnid, target, n, kept, target - kept))
    return rows
