"""The reason catalogue is complete and its documentation current; tallies merge in any order alike."""

from __future__ import annotations

import re
from pathlib import Path

from imagenet_captions import outcomes
from imagenet_captions.flickr.store import STATUSES
from imagenet_captions.outcomes import IMAGES, REASONS, RECORDS, Drop, Tally

PACKAGE = Path(outcomes.__file__).resolve().parent


def _emitted() -> set[str]:
    """Every reason a stage can name, read from the code: Drops, image errors, text filters."""
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        found |= set(re.findall(r"Drop\((?:RECORDS|IMAGES), \"(\w+)\"", text))
        found |= set(re.findall(r"ImageError\(\s*\"(\w+)\"", text))
        found |= set(re.findall(r"Loaded\(None, None, \"(\w+)\"", text))
    filters = (PACKAGE / "text" / "filters.py").read_text(encoding="utf-8")
    for block in re.split(r"^class ", filters, flags=re.M):
        # A filter's name is its reason when its verdict can be False (PartFilter's drop mode is).
        named = re.search(r"^\s+name = \"(\w+)\"", block, re.M)
        if named and re.search(r"return (False|not |bool\()|PartFilter\)", block):
            found.add(named[1])
    found |= set(re.findall(r"return \"(\w+)\"", filters))
    found |= {f"flickr_{s}" for s in (*STATUSES, "gave_up") if s != "ok"}
    found.add(outcomes.__dict__.get("OWNER_DUPLICATE", "owner_duplicate"))
    return found


def test_every_reason_the_stages_emit_is_catalogued():
    emitted = _emitted()
    assert {"no_image", "corrupt_image", "too_short", "unknown_class", "flickr_gave_up"} <= emitted
    assert emitted - set(REASONS) == set()


def test_the_report_documentation_is_generated_from_the_catalogue():
    doc = (PACKAGE.parents[1] / "docs" / "report.md").read_text(encoding="utf-8")
    assert doc == outcomes.markdown(), "regenerate: python -m imagenet_captions.outcomes > docs/report.md"
    for name in REASONS:
        assert f"`{name}`" in doc


def test_tallies_merge_to_the_same_counts_and_examples_in_any_order():
    drops = [Drop(RECORDS, "no_image", f"n01440764_{i}") for i in range(9)] + [
        Drop(IMAGES, "no_record", f"n01443537_{i}", "x") for i in range(3)
    ]
    parts = [Tally(), Tally(), Tally()]
    for i, d in enumerate(drops):
        parts[i % 3].drop(d)
    forward, backward = Tally(), Tally()
    for t in parts:
        forward.merge(t)
    for t in reversed(parts):
        backward.merge(t)
    assert forward.outcomes == backward.outcomes and forward.examples_of() == backward.examples_of()
    assert forward.by_category(RECORDS) == {"no_image": 9}
    assert [e["key"] for e in forward.examples_of()[RECORDS]["no_image"]] == sorted(d.key for d in drops[:9])[:5]
