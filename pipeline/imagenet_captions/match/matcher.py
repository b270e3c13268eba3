"""The matching rule, run over batches of captions with one Aho-Corasick automaton.

A caption's outcome is the list of ``(wnid, terms)`` pairs of the classes it names (``terms``: the
vocabulary's spellings that occurred, sorted), or a :class:`~imagenet_captions.outcomes.Drop`:
``no_caption``, ``no_class`` or ``several_classes``. docs/match.md states the rule exactly; this
module is its fast form, and ``tests/match/test_reference.py`` holds a literal slow form that must
agree with it row for row.

Speed comes from doing per caption only what C does: a batch of captions is lowered and joined with
``\\n`` (not a word character, and in no term: a match can never span two captions, and each
caption's edges see a non-word neighbour, as the rule's "no character" does), one automaton pass
finds every occurrence of every term in the batch, and Python looks only at the hits: the boundary
test where each hit is found, then the caption it lies in by bisection. Never a regular-expression
alternation, never a search per term.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate
from typing import TYPE_CHECKING, cast

from imagenet_captions.match.options import MatchRule
from imagenet_captions.match.vocabulary import Vocabulary
from imagenet_captions.outcomes import RECORDS, Drop

if TYPE_CHECKING:
    import ahocorasick_rs

#: The classes a caption names: ``[(wnid, (term, ...)), ...]`` sorted by wnid; or why it has none.
Matches = list[tuple[str, tuple[str, ...]]]
Outcome = Matches | Drop

#: Captions per automaton pass: large enough that the per-pass cost vanishes, small enough that the
#: joined text stays in cache and a pass over one huge caption does not hold a whole batch.
BATCH = 1024
#: The character that joins a batch: not a word character, and no term can hold one (Vocabulary).
SEP = "\n"
# A lone surrogate cannot be encoded for the automaton; U+FFFD is one character like it, and like
# it not a word character, so positions and boundaries stay the same (no term holds either).
_SURROGATE_RE = re.compile("[\ud800-\udfff]")

_MISSING = Drop(RECORDS, "no_caption", "", "missing")
_EMPTY = Drop(RECORDS, "no_caption", "", "empty")
_NO_CLASS = Drop(RECORDS, "no_class", "", "")


class Matcher:
    """``Matcher(vocabulary, rule).match_many(captions)``: one outcome per caption, in order.

    Picklable for Beam: only the vocabulary and the rule travel; the automaton is built on first
    use in each process (docs/match.md gives its cost).
    """

    def __init__(self, vocabulary: Vocabulary, rule: MatchRule) -> None:
        self.vocabulary = vocabulary
        self.rule = rule
        self._ac: ahocorasick_rs.AhoCorasick | None = None
        self._single: list[Matches] = []
        self._owners: list[tuple[tuple[str, str], ...]] = []

    def __getstate__(self) -> dict:
        return {"vocabulary": self.vocabulary, "rule": self.rule}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["vocabulary"], state["rule"])  # type: ignore[misc]  # rebuilds the lazy state after unpickling

    def _build(self) -> ahocorasick_rs.AhoCorasick:
        """The automaton over the distinct folded terms; for pattern ``i``, ``_owners[i]`` holds its
        (wnid, term) pairs (one folded term can be several spellings, and name several classes:
        "crane"), and ``_single[i]`` the outcome of a caption whose only occurrence it is."""
        import ahocorasick_rs

        fold = str.lower if self.rule.case == "insensitive" else str
        groups: dict[str, set[tuple[str, str]]] = {}
        for wnid in self.vocabulary.classes:
            for term in self.vocabulary.terms_of[wnid]:
                groups.setdefault(fold(term), set()).add((wnid, term))
        patterns = list(groups)
        self._owners = [tuple(sorted(groups[p])) for p in patterns]
        self._single = [_outcome(dict(_by_class(owners))) for owners in self._owners]
        # a DFA: the fastest scan of the automaton kinds, for a larger table built once (docs/match.md)
        self._ac = ahocorasick_rs.AhoCorasick(
            patterns,
            matchkind=ahocorasick_rs.MatchKind.Standard,
            implementation=ahocorasick_rs.Implementation.DFA,
        )
        return self._ac

    def match_one(self, caption: str | None) -> Outcome:
        return self.match_many([caption])[0]

    def match_many(self, captions: Sequence[str | None], keys: Sequence[str] | None = None) -> list[Outcome]:
        """One outcome per caption. A Drop's key is ``keys[i]`` when keys are given, else "" (the
        caller knows the row's key: ``drop._replace(key=...)``)."""
        out: list[Outcome] = []
        for lo in range(0, len(captions), BATCH):
            out.extend(self._batch(captions[lo : lo + BATCH]))
        if keys is not None:
            if len(keys) != len(captions):
                raise ValueError(f"match_many: {len(keys)} keys for {len(captions)} captions")
            pairs = zip(out, keys, strict=True)
            # type(o) is list, not isinstance: the hot loop's cheaper test, which mypy does not narrow on
            out = [o if type(o) is list else o._replace(key=k) for o, k in pairs]  # type: ignore[union-attr]  # o is a Drop
        return out

    def _batch(self, captions: Sequence[str | None]) -> list[Outcome]:
        rule = self.rule
        ac = self._ac if self._ac is not None else self._build()
        texts = list(captions)
        if rule.clean:
            from imagenet_captions.text.clean import clean_field

            texts = [clean_field(t) if t else t for t in texts]
        out: list[Outcome] = [_NO_CLASS] * len(texts)
        for i in [i for i, t in enumerate(texts) if not t or t.isspace()]:  # empty after str.strip()
            out[i] = _MISSING if texts[i] is None else _EMPTY
            texts[i] = ""
        strings = cast(list[str], texts)  # no None is left: each became "" above
        if rule.case == "insensitive":
            strings = [t.lower() for t in strings]
        joined = SEP.join(["", *strings, ""])
        try:
            hits = ac.find_matches_as_indexes(joined, overlapping=True)
        except UnicodeEncodeError:
            joined = _SURROGATE_RE.sub("\ufffd", joined)
            hits = ac.find_matches_as_indexes(joined, overlapping=True)
        # the boundary test, where the hit is: most hits are inside a longer word
        kept = []
        for hit in hits:
            c = joined[hit[1] - 1]
            if c.isalnum() or c == "_":
                continue
            c = joined[hit[2]]
            if c.isalnum() or c == "_":
                continue
            kept.append(hit)
        if not kept:
            return out
        # starts[i]: where caption i begins in `joined` (each is preceded by one SEP)
        starts = list(accumulate([len(t) + 1 for t in strings], initial=1))
        found: dict[int, list[tuple[int, int, int]]] = {}  # caption -> [(start, -end, pattern)]
        for pattern, start, end in kept:
            i = bisect_right(starts, start) - 1
            spans = found.get(i)
            if spans is None:
                found[i] = [(start, -end, pattern)]
            else:
                spans.append((start, -end, pattern))
        longest, drop_several = rule.overlaps == "longest", rule.multiple == "drop"
        for i, spans in found.items():
            if len(spans) == 1:
                matches = self._single[spans[0][2]]
            else:
                patterns = {p for _, _, p in (_outermost(spans) if longest else spans)}
                if len(patterns) == 1:  # one term repeated
                    matches = self._single[patterns.pop()]
                else:
                    classes: dict[str, set[str]] = {}
                    for pattern in patterns:
                        for wnid, term in self._owners[pattern]:
                            classes.setdefault(wnid, set()).add(term)
                    matches = _outcome(classes)
            if len(matches) > 1 and drop_several:
                out[i] = Drop(RECORDS, "several_classes", "", " ".join(w for w, _ in matches))
            else:
                out[i] = list(matches)
        return out


def _by_class(owners: Sequence[tuple[str, str]]) -> dict[str, set[str]]:
    classes: dict[str, set[str]] = {}
    for wnid, term in owners:
        classes.setdefault(wnid, set()).add(term)
    return classes


def _outcome(classes: dict[str, set[str]]) -> Matches:
    return sorted((wnid, tuple(sorted(terms))) for wnid, terms in classes.items())


def _outermost(spans: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """The ``(start, -end, pattern)`` spans that lie inside no other (``--overlaps longest``).
    Ordered by start, then longest first, a span lies inside another exactly when an earlier span
    reaches at least as far (two hits on one span are one text, so one pattern: spans are distinct)."""
    kept, reach = [], -1
    for span in sorted(spans):
        if -span[1] > reach:
            kept.append(span)
            reach = -span[1]
    return kept
