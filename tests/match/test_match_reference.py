"""A slow, literal reimplementation of the matching rule agrees with the Matcher row for row.

The reference shares no code with the matcher: it loops over every term of every class with
``str.find``, applies the boundary test and the overlap rule as docs/match.md words them, on the
1,000 real LAION captions of tests/match/data, under every preset and every mode, with the WordNet
and CLIP vocabularies. Only the text cleaning is shared: the rule names it.
"""

from __future__ import annotations

import itertools
import random
from functools import cache
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from imagenet_captions.match.matcher import Matcher
from imagenet_captions.match.options import PRESETS, MatchRule, apply_preset
from imagenet_captions.match.vocabulary import Vocabulary, load_vocabulary
from imagenet_captions.outcomes import Drop
from imagenet_captions.text.clean import clean_field

SAMPLE = Path(__file__).parent / "data" / "laion_captions_sample_1000.parquet"


def captions() -> list[str | None]:
    return pq.read_table(SAMPLE, columns=["TEXT"]).column("TEXT").to_pylist()


def is_word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def occurrences(text: str, vocabulary: Vocabulary, case: str) -> list[tuple[int, int, str, str]]:
    """Every (start, end, wnid, term): the text at start starts with the term, and neither
    neighbour (where there is one) is a word character."""
    fold = (lambda s: s.lower()) if case == "insensitive" else (lambda s: s)
    t = fold(text)
    found = []
    for wnid in vocabulary.classes:
        for term in vocabulary.terms_of[wnid]:
            f = fold(term)
            i = t.find(f)
            while i != -1:
                end = i + len(f)
                before_ok = i == 0 or not is_word_char(t[i - 1])
                after_ok = end == len(t) or not is_word_char(t[end])
                if before_ok and after_ok:
                    found.append((i, end, wnid, term))
                i = t.find(f, i + 1)
    return found


def outcome(occ: list[tuple[int, int, str, str]], overlaps: str, multiple: str) -> str | list:
    if overlaps == "longest":
        occ = [
            o
            for o in occ
            if not any(p[0] <= o[0] and o[1] <= p[1] and (p[0], p[1]) != (o[0], o[1]) for p in occ)
        ]
    by_class: dict[str, set[str]] = {}
    for _, _, wnid, term in occ:
        by_class.setdefault(wnid, set()).add(term)
    if not by_class:
        return "no_class"
    if len(by_class) > 1 and multiple == "drop":
        return "several_classes"
    return [(wnid, tuple(sorted(terms))) for wnid, terms in sorted(by_class.items())]


@cache
def vocabulary(names: str) -> Vocabulary:
    return load_vocabulary(names, "ilsvrc2012")


@cache
def reference_occurrences(names: str, case: str, clean: bool) -> tuple:
    out = []
    for caption in captions():
        text = caption if caption is None or not clean else clean_field(caption)
        out.append(None if text is None or not text.strip() else occurrences(text, vocabulary(names), case))
    return tuple(out)


def reference(names: str, rule: MatchRule) -> list:
    return [
        "no_caption" if occ is None else outcome(occ, rule.overlaps, rule.multiple)
        for occ in reference_occurrences(names, rule.case, rule.clean)
    ]


def as_reference(got: list) -> list:
    return [o.reason if isinstance(o, Drop) else o for o in got]


MODES = [
    MatchRule(case, overlaps, multiple, clean)
    for case, overlaps, multiple, clean in itertools.product(
        ("insensitive", "sensitive"), ("longest", "all"), ("drop", "all"), (True, False)
    )
]


@pytest.mark.slow
@pytest.mark.parametrize("names", ["wordnet", "clip"])
def test_the_matcher_agrees_with_the_literal_rule_in_every_mode(names):
    sample = captions()
    for rule in MODES:
        got = as_reference(Matcher(vocabulary(names), rule).match_many(sample))
        want = reference(names, rule)
        diff = [(i, sample[i], g, w) for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
        assert not diff, f"{names} {rule}: {len(diff)} rows differ, first {diff[:3]}"


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("names", ["wordnet", "clip"])
def test_the_matcher_agrees_with_the_literal_rule_under_every_preset(preset, names):
    rule, _ = apply_preset(preset, names=names)
    got = as_reference(Matcher(vocabulary(names), rule).match_many(captions()))
    assert got == reference(names, rule)


@pytest.mark.slow
def test_the_sample_exercises_what_the_comparison_is_about():
    """The agreement means something only if the sample has matches, nesting, several classes and
    hits inside words (which the boundary test must reject)."""
    rule = MatchRule(overlaps="all", multiple="all")
    got = reference("wordnet", rule)
    assert sum(isinstance(o, list) for o in got) > 150
    assert sum(isinstance(o, list) and len(o) > 1 for o in got) > 10
    longest = reference("wordnet", MatchRule(multiple="all"))
    assert sum(a != b for a, b in zip(got, longest, strict=True)) >= 1  # "Bow tie": nesting is rare here
    sensitive = reference("wordnet", MatchRule(case="sensitive", overlaps="all", multiple="all"))
    assert sum(a != b for a, b in zip(got, sensitive, strict=True)) > 50


def synthetic(vocab: Vocabulary, n: int, seed: int) -> list[str]:
    """Captions made of the vocabulary's own terms, to exercise what real captions rarely do: terms
    nested in one another, glued to word characters, digits, underscores and punctuation, in other
    cases, around characters whose lowering is longer ("İ"), and across line breaks."""
    rng = random.Random(seed)
    terms = sorted({t for ts in vocab.terms_of.values() for t in ts})
    nesting = [(a, b) for a in terms if " " in a for b in a.split(" ") if b in terms]
    glue = [" ", " ", " ", "", "-", "_", ", ", "s ", "2", "İ", "\n", "'", ".", "é", " (", ") "]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 4)):
            term = rng.choice(terms) if rng.random() < 0.7 else " ".join(rng.choice(nesting))
            term = rng.choice((term, term.upper(), term.title(), term))
            parts.extend((term, rng.choice(glue)))
        out.append("".join(parts))
    return out


@pytest.mark.slow
def test_the_matcher_agrees_with_the_literal_rule_on_terms_glued_and_nested():
    vocab = vocabulary("wordnet")
    sample = synthetic(vocab, 1500, seed=0)
    for case in ("insensitive", "sensitive"):
        occ = [occurrences(text, vocab, case) for text in sample]
        nested = sum(any(p[:2] != q[:2] and p[0] <= q[0] and q[1] <= p[1] for p in o for q in o) for o in occ)
        assert nested > 100
        for overlaps, multiple in itertools.product(("longest", "all"), ("drop", "all")):
            rule = MatchRule(case, overlaps, multiple, clean=False)
            got = as_reference(Matcher(vocab, rule).match_many(sample))
            want = [outcome(o, overlaps, multiple) for o in occ]
            diff = [(i, sample[i], g, w) for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
            assert not diff, f"{rule}: {len(diff)} rows differ, first {diff[:3]}"
