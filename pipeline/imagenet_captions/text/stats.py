"""Text statistics for the report, as a plain mergeable accumulator (``TextStats``).

Beam's ``TextStatsFn`` (in ``beam.py``) only calls ``add``, ``merge`` and ``to_dict``, so the
numbers are pipeline data (the same on every runner) and the class is tested without Beam.
Lengths are kept as exact histograms (length -> count): the number of distinct lengths is small
(thousands), merging is adding counters, and the percentiles are exact, not sketched.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from imagenet_captions.text.stage import TextOutcome

#: Fields whose length (characters; for tags, the number of tags) is summarised, over the written
#: records where the field is not empty.
LENGTH_FIELDS = ("title", "description", "tags", "caption")
PERCENTILES = (1, 5, 25, 50, 75, 95, 99)


def percentiles(hist: Counter[int], qs: tuple[int, ...] = PERCENTILES) -> dict[str, Any]:
    """Nearest-rank percentiles, min, max and mean of a length histogram (empty: all None)."""
    total = sum(hist.values())
    out: dict[str, Any] = {"count": total}
    if total == 0:
        out.update({f"p{q}": None for q in qs})
        out.update(min=None, max=None, mean=None)
        return out
    items = sorted(hist.items())
    targets = [(q, max(1, -(-q * total // 100))) for q in qs]  # ceil(q% of total), nearest rank
    seen, i = 0, 0
    for length, count in items:
        seen += count
        while i < len(targets) and seen >= targets[i][1]:
            out[f"p{targets[i][0]}"] = length
            i += 1
    out["min"], out["max"] = items[0][0], items[-1][0]
    out["mean"] = round(sum(k * v for k, v in items) / total, 3)
    return out


class TextStats:
    """Counts over TextOutcomes: input, written, drops by reason, steps that changed text,
    per-field non-empty counts and length histograms of written records, languages."""

    def __init__(self) -> None:
        self.input = 0
        self.written = 0
        self.dropped: Counter[str] = Counter()
        self.changed: Counter[str] = Counter()
        self.non_empty: Counter[str] = Counter()
        self.lengths: dict[str, Counter[int]] = {f: Counter() for f in LENGTH_FIELDS}
        self.langs: dict[str, Counter[str]] = {}
        self.lang_score_hist: Counter[int] = Counter()  # caption confidence in tenths, 0..10

    def add(self, outcome: TextOutcome) -> TextStats:
        self.input += 1
        for step in outcome.changed:
            self.changed[step] += 1
        for name, result in outcome.langs.items():
            self.langs.setdefault(name, Counter())[result[0] if result else "und"] += 1
        rec = outcome.record
        if rec is None:
            self.dropped[outcome.reason or "unknown"] += 1
            return self
        self.written += 1
        for f in LENGTH_FIELDS:
            n = len(rec[f])
            if n:  # lengths of non-empty fields; how many are empty is non_empty's complement
                self.lengths[f][n] += 1
                self.non_empty[f] += 1
        if rec.get("lang_score") is not None:
            self.lang_score_hist[int(rec["lang_score"] * 10)] += 1
        return self

    def merge(self, other: TextStats) -> TextStats:
        self.input += other.input
        self.written += other.written
        self.dropped.update(other.dropped)
        self.changed.update(other.changed)
        self.non_empty.update(other.non_empty)
        for f in LENGTH_FIELDS:
            self.lengths[f].update(other.lengths[f])
        for name, counter in other.langs.items():
            self.langs.setdefault(name, Counter()).update(counter)
        self.lang_score_hist.update(other.lang_score_hist)
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary; ``written + sum(dropped.values()) == input`` always holds."""
        return {
            "input": self.input,
            "written": self.written,
            "dropped": dict(sorted(self.dropped.items())),
            "changed": dict(sorted(self.changed.items())),
            "non_empty": {f: self.non_empty[f] for f in LENGTH_FIELDS},
            "length_chars": {f: percentiles(self.lengths[f]) for f in LENGTH_FIELDS if f != "tags"},
            "tags_per_record": percentiles(self.lengths["tags"]),
            "languages": {
                name: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))
                for name, c in sorted(self.langs.items())
            },
            "caption_lang_score_tenths": {str(k): v for k, v in sorted(self.lang_score_hist.items())},
        }
