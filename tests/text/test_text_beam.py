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
        lang_fields=("title", "description", "caption"),
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
    assert set(s["languages"]) == {"title", "description", "caption"}
    # languages are counted for every finished record (dropped ones too), not for part-filter drops
    assert (
        sum(s["languages"]["caption"].values()) == 13 - reasons["machine_tags"] - reasons["owner_duplicate"]
    )


def test_empty_input_gives_one_stats_dict() -> None:
    with beam.Pipeline(runner=FnApiRunner()) as p:
        out = p | beam.Create([]) | CleanText(TextOptions(lang_backend="none"))
        assert_that(out["stats"] | beam.Map(lambda s: (s["input"], s["written"])), equal_to([(0, 0)]))


def _bad_records() -> list[dict]:
    return [
        {"key": "n0_1", "title": "", "tags": [], "description": ""},
        {"key": "n0_2", "title": " \t ", "tags": ["  ", ""], "description": "\n\n"},
        {"key": "n0_3", "title": "x", "tags": [], "description": "<p>" + "word &amp;amp; " * 80_000 + "</p>"},
        {"key": "n0_4", "title": "bad\u200b", "tags": ["\ufeff"], "description": "e\u0301 \u0301lone"},
        {"key": "n0_5", "title": "שלום \u202eעולם", "tags": ["😀"], "description": "x\x00y"},
        {
            "key": "n0_6",
            "title": "<script>alert(1)</script><style>a{}</style>ok",
            "tags": [],
            "description": "<b>open",
        },
        {
            "key": "n0_7",
            "title": "&amp;amp;amp;quot;deep&amp;amp;amp;quot;",
            "tags": None,
            "description": None,
        },
    ]


def test_bad_inputs_through_the_transform_come_out_clean_or_dropped() -> None:
    import pyarrow as pa

    _GOT.clear()
    with beam.Pipeline(runner=FnApiRunner()) as p:
        # No lone surrogates here: Beam's coders cannot encode them, and Beam samples element sizes
        # by encoding them even between fused steps, so a reader must remove them before the first
        # PCollection (ijson already turns them into "?"); TextStage's handling of them is tested
        # without Beam in test_text_clean.py and test_text_stage.py.
        out = p | beam.Create(_bad_records()) | CleanText(TextOptions(drop_empty=True))
        both = (
            out["records"] | beam.Map(lambda r: ("r", r)),
            out["dropped"] | beam.Map(lambda d: ("d", d)),
        ) | beam.Flatten()
        both | beam.combiners.ToList() | beam.Map(_keep)
    rows = _GOT["all"]
    records = {x["key"]: x for kind, x in rows if kind == "r"}
    dropped = dict(x for kind, x in rows if kind == "d")
    assert dropped == {"n0_1": "empty_text", "n0_2": "empty_text"}
    assert set(records) == {"n0_3", "n0_4", "n0_5", "n0_6", "n0_7"}
    assert records["n0_4"]["title"] == "bad" and records["n0_4"]["tags"] == []
    assert records["n0_4"]["description"] == "\u00e9 lone"
    assert records["n0_5"]["title"] == "שלום עולם" and records["n0_5"]["description"] == "xy"
    assert records["n0_6"]["title"] == "ok" and records["n0_6"]["description"] == "open"
    assert records["n0_7"]["caption"] == '"deep"'
    assert "&amp;" not in records["n0_3"]["caption"] and "<p>" not in records["n0_3"]["caption"]
    for r in records.values():
        pa.array([r["caption"], r["title"], r["description"], *r["tags"]], pa.string())
