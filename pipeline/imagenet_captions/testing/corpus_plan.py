"""How many records the stand-in corpus has per class, and which of them have each text field.

The counts are the release's, exactly (per class: records, non-empty titles, tags and
descriptions, from the class-frequency files in ``imagenet_captions/text/data``, see
``text/data/SOURCES.md``); :func:`class_plan` scales them down proportionally for a smaller corpus
and :func:`regions` deals each class's records into the Venn regions of the three fields. The
text itself is made in :mod:`.corpus`.
"""

from __future__ import annotations

import random
from importlib import resources
from typing import Literal, TypedDict

FREQ_FILES = {
    "all": "class_frequency_incaps_imagenet_ori.txt",
    "title": "class_frequency_incaps_title_only_imagenet_ori.txt",
    "tags": "class_frequency_incaps_tags_only_imagenet_ori.txt",
    "description": "class_frequency_incaps_description_only_imagenet_ori.txt",
    "tags_or_description": "class_frequency_incaps_no_title_imagenet_ori.txt",
    "title_or_description": "class_frequency_incaps_no_tags_imagenet_ori.txt",
    "title_or_tags": "class_frequency_incaps_no_description_imagenet_ori.txt",
}
RELEASE_TOTALS = {"all": 448_896, "title": 443_012, "tags": 408_671, "description": 267_848}

TextField = Literal["title", "tags", "description"]
TEXT_FIELDS: tuple[TextField, ...] = ("title", "tags", "description")


class ClassPlan(TypedDict):
    """One class's counts: records, records with each text field, and the release's pairwise unions
    (title or tags, title or description, tags or description), or None once scaled, since scaling
    each union on its own would not keep the three fields' Venn regions consistent."""

    n: int
    title: int
    tags: int
    description: int
    unions: tuple[int, int, int] | None


def _freqs(name: str) -> list[int]:
    text = (
        resources.files("imagenet_captions.text")
        .joinpath("data", FREQ_FILES[name])
        .read_text(encoding="utf-8")
    )
    counts = [int(line.rsplit("\t", 1)[1]) for line in text.splitlines() if line.strip()]
    if len(counts) != 1000:
        raise ValueError(f"{FREQ_FILES[name]}: expected 1000 classes, found {len(counts)}")
    return counts


def _scale(counts: list[int], total: int) -> list[int]:
    """Largest-remainder scaling of ``counts`` to sum exactly ``total``."""
    full = sum(counts)
    if total >= full:
        return list(counts)
    raw = [c * total / full for c in counts]
    out = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - out[i]), i))
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


def class_plan(records: int | None = None) -> list[ClassPlan]:
    """Per class (label order): n, and how many records have title, tags, description, and each
    Venn region. Exact release counts when ``records`` is None or the full size."""
    f = {k: _freqs(k) for k in FREQ_FILES}
    full = sum(f["all"])
    n_per_class = f["all"] if records is None or records >= full else _scale(f["all"], records)
    plan: list[ClassPlan] = []
    for c in range(1000):
        N = n_per_class[c]
        unions: tuple[int, int, int] | None
        if f["all"][c] == N:
            T, G, D = f["title"][c], f["tags"][c], f["description"][c]
            unions = (f["title_or_tags"][c], f["title_or_description"][c], f["tags_or_description"][c])
        else:  # scaled: keep each field's rate, drop the pairwise unions
            base = max(1, f["all"][c])
            T, G, D = (round(f[k][c] * N / base) for k in TEXT_FIELDS)
            unions = None
        plan.append({"n": N, "title": T, "tags": G, "description": D, "unions": unions})
    if records is not None and records < full:  # fix rounding so the field totals scale exactly too
        for k in TEXT_FIELDS:
            target = round(RELEASE_TOTALS[k] * records / full)
            diff = target - sum(p[k] for p in plan)
            step = 1 if diff > 0 else -1
            i = 0
            while diff:
                p = plan[i % 1000]
                if 0 <= p[k] + step <= p["n"]:
                    p[k] += step
                    diff -= step
                i += 1
    return plan


def regions(p: ClassPlan, rng: random.Random) -> list[tuple[bool, bool, bool]]:
    """(has title, has tags, has description) for each record of a class, in random order."""
    N, T, G, D = p["n"], p["title"], p["tags"], p["description"]
    if p["unions"] is not None:
        tg_u, td_u, gd_u = p["unions"]
        TG, TD, GD = T + G - tg_u, T + D - td_u, G + D - gd_u
        S = T + G + D - TG - TD - GD
        lo = max(0, TG + TD - T, TG + GD - G, TD + GD - D)
        hi = min(TG, TD, GD, N - S)
        if lo <= hi and min(TG, TD, GD) >= 0:
            x = hi  # the fewest records with no text at all
            counts = {
                (True, True, True): x,
                (True, True, False): TG - x,
                (True, False, True): TD - x,
                (False, True, True): GD - x,
                (True, False, False): T - TG - TD + x,
                (False, True, False): G - TG - GD + x,
                (False, False, True): D - TD - GD + x,
                (False, False, False): N - S - x,
            }
            if all(v >= 0 for v in counts.values()):
                out = [k for k, v in counts.items() for _ in range(v)]
                rng.shuffle(out)
                return out
    # Correlated ranking: a record "rich" in text tends to have every field; marginals exact.
    score = [rng.random() for _ in range(N)]

    def top(k: int) -> set[int]:
        noisy = sorted(range(N), key=lambda i: score[i] + rng.random() * 0.8, reverse=True)
        return set(noisy[:k])

    t, g, d = top(T), top(G), top(D)
    return [(i in t, i in g, i in d) for i in range(N)]
