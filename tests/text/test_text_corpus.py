"""The generated corpus: exact release counts, deterministic, release format, stated mess."""

from __future__ import annotations

import io
import json
import random

from imagenet_captions.classes import wnids
from imagenet_captions.sources.release import to_raw_record
from imagenet_captions.testing.corpus import main, write_corpus
from imagenet_captions.testing.corpus_plan import RELEASE_TOTALS, class_plan
from imagenet_captions.testing.corpus_plan import regions as _regions


def test_full_plan_has_the_release_counts_per_class_and_in_total() -> None:
    plan = class_plan()
    assert len(plan) == 1000
    assert sum(p["n"] for p in plan) == RELEASE_TOTALS["all"] == 448_896
    assert sum(p["title"] for p in plan) == 443_012
    assert sum(p["tags"] for p in plan) == 408_671
    assert sum(p["description"] for p in plan) == 267_848
    assert sum(p["n"] > 0 for p in plan) == 999
    assert plan[wnids().index("n04399382")]["n"] == 0  # teddy bear: no records in the release


def test_regions_keep_each_class_field_counts_exact() -> None:
    plan = class_plan()
    rng = random.Random(0)
    for c in range(0, 1000, 37):  # a spread of classes, both region methods
        p = plan[c]
        regions = _regions(p, rng)
        assert len(regions) == p["n"]
        assert sum(t for t, _, _ in regions) == p["title"]
        assert sum(g for _, g, _ in regions) == p["tags"]
        assert sum(d for _, _, d in regions) == p["description"]


def test_scaled_corpus_counts_format_and_determinism() -> None:
    buf = io.StringIO()
    n = write_corpus(buf, records=3000, seed=1)
    items = json.loads(buf.getvalue())
    assert n == len(items) == 3000
    assert sum(bool(i["title"]) for i in items) == round(443_012 * 3000 / 448_896)
    assert sum(bool(i["tags"]) for i in items) == round(408_671 * 3000 / 448_896)
    assert sum(bool(i["description"]) for i in items) == round(267_848 * 3000 / 448_896)
    keys = set()
    for item in items:
        assert set(item) == {"filename", "title", "tags", "description", "wnid", "owner"}
        rec = to_raw_record(item)  # the release reader accepts every record
        assert isinstance(rec, dict), rec
        keys.add(rec["key"])
    assert len(keys) == 3000
    again = io.StringIO()
    write_corpus(again, records=3000, seed=1)
    assert again.getvalue() == buf.getvalue()
    other = io.StringIO()
    write_corpus(other, records=3000, seed=2)
    assert other.getvalue() != buf.getvalue()


def test_corpus_has_the_stated_mess() -> None:
    buf = io.StringIO()
    write_corpus(buf, records=20_000)
    items = json.loads(buf.getvalue())
    descs = [i["description"] for i in items if i["description"]]
    share = lambda pred, xs: sum(map(pred, xs)) / len(xs)  # noqa: E731
    assert 0.09 < share(lambda d: "<" in d and ">" in d, descs) < 0.16
    assert (
        share(lambda d: "&amp;" in d or "&quot;" in d or "&#039;" in d or "&nbsp;" in d or "&gt;" in d, descs)
        > 0.05
    )
    titles = [i["title"] for i in items if i["title"]]
    assert (
        0.06
        < share(lambda t: t[:3] in ("IMG", "DSC", "_MG", "100") or t[:1] == "P" and t[1:2].isdigit(), titles)
        < 0.10
    )
    assert any("Ã" in d or "â€" in d for d in descs)
    owners: dict[str, list[str]] = {}
    for i in items:
        if i["description"]:
            owners.setdefault(i["owner"], []).append(i["description"])
    assert any(len(v) >= 5 and len(set(v)) < len(v) / 2 for v in owners.values())  # pasted descriptions


def test_cli_writes_atomically(tmp_path) -> None:
    out = tmp_path / "c.json"
    assert main(["--out", str(out), "--records", "50"]) == 0
    assert len(json.loads(out.read_text())) == 50
    assert not (tmp_path / "c.json.tmp").exists()


def test_every_stated_language_has_owners() -> None:
    from collections import Counter

    from imagenet_captions.testing.corpus import LANG_SHARES, N_OWNERS, _owner_lang

    counts = Counter(_owner_lang(o) for o in range(N_OWNERS))
    for lang, share in LANG_SHARES:
        assert abs(counts[lang] / N_OWNERS - share) < 0.01, lang
