"""CleanText on the in-process FnApiRunner: outputs, drops and stats add up."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to

from imagenet_captions.text import TextOptions
from imagenet_captions.text.beam import CleanText


def _raws() -> list[dict]:
    out = []
    for i in range(12):
        out.append(
            {
                "key": f"n01440764_{i}",
                "wnid": "n01440764",
                "title": f"IMG_{i:04d}" if i % 4 == 0 else "A pike &amp; a perch",
                "tags": ["fish", "geo:lat=1"] if i % 3 == 0 else ["fish"],
                "description": "Shot on my Nikon D70 in the old harbour at dawn" if i < 6 else "",
                "owner": "owner-a" if i < 6 else None,
            }
        )
    out.append(
        {"key": "n01440764_99", "wnid": "n01440764", "title": " ", "tags": [], "description": "<p></p>"}
    )
    return out


#: Filled by the pipeline: the in-process runner pickles functions, but module globals stay shared.
_GOT: dict[str, list] = {}


def _keep(xs: list) -> None:
    _GOT["all"] = xs


def _run(options: TextOptions) -> tuple[list, list, list]:
    _GOT.clear()

    class Collect(beam.DoFn):
        def __init__(self, name):
            self.name = name

        def process(self, x):
            yield (self.name, x)

    with beam.Pipeline(runner=FnApiRunner()) as p:
        out = p | beam.Create(_raws()) | CleanText(options)
        merged = [out[n] | f"Tag{n}" >> beam.ParDo(Collect(n)) for n in ("records", "dropped", "stats")]
        both = merged | beam.Flatten() | beam.combiners.ToList()
        both | beam.Map(_keep)
    rows = _GOT["all"]
    pick = lambda n: [x for name, x in rows if name == n]  # noqa: E731
    return pick("records"), pick("dropped"), pick("stats")


def test_defaults_keep_everything_and_stats_add_up() -> None:
    records, dropped, stats = _run(TextOptions(lang_backend="none"))
    assert len(records) == 13 and dropped == []
    (s,) = stats
    assert s["input"] == s["written"] == 13
    assert s["non_empty"]["title"] == 12 and s["non_empty"]["description"] == 6
    assert s["changed"]["entities"] + s["changed"].get("html", 0) >= 1
    assert all("&amp;" not in r["caption"] for r in records)


def test_filters_and_owner_dedupe() -> None:
    o = TextOptions(
        lang_backend="fasttext",
        drop_empty=True,
        camera_titles="strip",
        machine_tags="drop",
        owner_duplicates="drop",
    )
    records, dropped, stats = _run(o)
    (s,) = stats
    reasons = {}
    for _, r in dropped:
        reasons[r] = reasons.get(r, 0) + 1
    # machine tags on i % 3 == 0 (0,3,6,9); owner-a's repeated description: keep n01440764_1, drop 2,4,5
    # (keys sort as strings: 0,1,10,11,2,... ; 0 and 3 are already gone); the blank record is empty.
    assert reasons == {"machine_tags": 4, "owner_duplicate": 3, "empty_text": 1}
    assert s["dropped"] == reasons
    assert s["written"] + sum(s["dropped"].values()) == s["input"] == 13
    assert len(records) == s["written"] == 5
    assert s["changed"].get("camera_filename_stripped", 0) >= 1
    assert all(r["lang"] for r in records)


def test_empty_input_gives_one_stats_dict() -> None:
    with beam.Pipeline(runner=FnApiRunner()) as p:
        out = p | beam.Create([]) | CleanText(TextOptions(lang_backend="none"))
        assert_that(out["stats"] | beam.Map(lambda s: (s["input"], s["written"])), equal_to([(0, 0)]))
