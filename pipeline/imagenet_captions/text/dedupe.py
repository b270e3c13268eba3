"""One owner's repeated descriptions: exact and near-duplicates, found within the owner's photos.

Owners paste the same description ("All my photos are taken with a Nikon D70 ...") on hundreds of
photos; it says nothing about each image. Within one owner's records (sorted by key, so the result
does not depend on arrival order) a description is a duplicate of an earlier one when their word
3-shingle sets have Jaccard similarity >= ``threshold`` (1.0: identical after case and space
folding). Candidates come from an inverted index of shingles, so an owner with thousands of
distinct descriptions costs about the number of shared shingles, not thousands squared.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

OWNER_DUPLICATE = "owner_duplicate"


def _shingles(text: str, n: int = 3) -> frozenset[tuple[str, ...]]:
    words = text.casefold().split()
    if len(words) < n:
        return frozenset([tuple(words)]) if words else frozenset()
    return frozenset(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def duplicate_of(descriptions: list[str], threshold: float) -> list[int | None]:
    """For each description, the index of the earlier one it duplicates (its cluster's first), or None.

    Empty descriptions are never duplicates.
    """
    out: list[int | None] = []
    exact: dict[str, int] = {}
    reps: list[tuple[int, frozenset[tuple[str, ...]]]] = []  # cluster representatives
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)  # shingle -> positions in reps
    for i, desc in enumerate(descriptions):
        folded = " ".join(desc.casefold().split())
        if not folded:
            out.append(None)
            continue
        if folded in exact:
            out.append(exact[folded])
            continue
        match: int | None = None
        sh = _shingles(folded)
        if threshold < 1.0 and sh:
            overlap: dict[int, int] = defaultdict(int)
            for s in sh:
                for r in index.get(s, ()):
                    overlap[r] += 1
            best: tuple[float, int] | None = None  # (similarity, -index): most similar, then earliest
            for r, inter in overlap.items():
                rep_i, rep_sh = reps[r]
                jaccard = inter / (len(sh) + len(rep_sh) - inter)
                if jaccard >= threshold and (best is None or (jaccard, -rep_i) > best):
                    best, match = (jaccard, -rep_i), rep_i
        if match is not None:
            exact[folded] = match
            out.append(match)
            continue
        exact[folded] = i
        r = len(reps)
        reps.append((i, sh))
        for s in sh:
            index[s].append(r)
        out.append(None)
    return out


def dedupe_owner(
    items: list[tuple[dict[str, Any], set[str]]], mode: str, threshold: float
) -> tuple[list[tuple[dict[str, Any], set[str]]], list[tuple[str, tuple[str, ...]]]]:
    """Apply ``mode`` (``once`` or ``drop``) to one owner's prepared records.

    Returns the records to finish (with ``changed`` updated) and the dropped ones as
    ``(key, changed)`` (reason ``owner_duplicate``). ``once``: the first photo of each cluster keeps
    the description, the others lose it (the record stays); ``drop``: the others are dropped.
    """
    items = sorted(items, key=lambda it: it[0]["key"])
    dup = duplicate_of([rec["description"] for rec, _ in items], threshold)
    kept: list[tuple[dict[str, Any], set[str]]] = []
    dropped: list[tuple[str, tuple[str, ...]]] = []
    for (rec, changed), d in zip(items, dup, strict=True):
        if d is None:
            kept.append((rec, changed))
        elif mode == "drop":
            dropped.append((rec["key"], tuple(sorted(changed))))
        else:
            rec["description"] = ""
            kept.append((rec, changed | {"owner_duplicate_stripped"}))
    return kept, dropped
