"""TextStage, filters, captions, owner dedupe and stats, in plain Python."""

from __future__ import annotations

import argparse
import json
import pickle

import pytest

from imagenet_captions.errors import UsageError
from imagenet_captions.schema import column_names, to_table
from imagenet_captions.text import (
    TextOptions,
    TextStage,
    add_text_arguments,
    make_caption,
    text_options_from_args,
)
from imagenet_captions.text.dedupe import dedupe_owner, duplicate_of
from imagenet_captions.text.filters import (
    BlocklistFilter,
    BoilerplateFilter,
    CameraFilenameFilter,
    MachineTagFilter,
    is_camera_filename,
    is_machine_tag,
)
from imagenet_captions.text.stage import RECORD_COLUMNS
from imagenet_captions.text.stats import TextStats, percentiles


def raw(key: str = "n01440764_1", **kw) -> dict:
    d = {"key": key, "wnid": key.split("_")[0], "title": "", "tags": [], "description": ""}
    d.update(kw)
    return d


def test_release_defaults_filter_nothing_and_join_by_spaces() -> None:
    stage = TextStage(TextOptions(lang_backend="none"))
    out = stage.process(raw(title="A  pike", tags=["fish", " lake "], description="Caught\nyesterday"))
    assert out.reason is None
    rec = out.record
    assert set(rec) == set(RECORD_COLUMNS) and set(RECORD_COLUMNS) <= set(column_names())
    assert rec["caption"] == "A pike fish lake Caught yesterday"
    assert rec["description"] == "Caught\nyesterday"  # the field keeps its line break
    assert rec["lang"] is None
    empty = stage.process(raw(key="n0_2"))
    assert empty.record is not None and empty.record["caption"] == ""  # the release kept empty records


def test_records_fit_the_schema() -> None:
    stage = TextStage()
    rec = stage.process(raw(title="Bad\ud800 title", description="x\x00", photo_id="123", license=4)).record
    rec["label"] = 0
    table = to_table([rec])
    assert table.num_rows == 1 and table.column("photo_id")[0].as_py() == 123
    assert table.column("license")[0].as_py() == "4"


def test_sloppy_input_types_do_not_crash() -> None:
    stage = TextStage(TextOptions(lang_backend="none"))
    out = stage.process({"key": "n0_1", "title": None, "tags": "one tag", "description": 42, "photo_id": "x"})
    assert out.record["tags"] == ["one tag"] and out.record["description"] == "42"
    assert out.record["photo_id"] is None
    out = stage.process({"key": "n0_1", "tags": [None, 7, "", "a"]})
    assert out.record["tags"] == ["7", "a"] and "empty_tags" in out.changed
    with pytest.raises(ValueError, match="key"):
        stage.process({"title": "no key"})


def test_language_annotation_both_backends() -> None:
    for backend in ("fasttext", "langdetect"):
        stage = TextStage(
            TextOptions(lang_backend=backend, lang_fields=("title", "description", "tags", "caption"))
        )
        out = stage.process(
            raw(
                title="Der Hecht im See",
                tags=["fisch", "angeln"],
                description="Ein schöner großer Fisch aus dem See",
            )
        )
        assert out.record["lang"] == "de", backend
        assert 0.0 < out.record["lang_score"] <= 1.0
        assert set(out.langs) == {"title", "description", "tags", "caption"}
        assert stage.process(raw(title="12345 !!!")).record["lang"] is None  # no letters, no language


def test_langdetect_is_deterministic_across_pickled_workers() -> None:
    stage = TextStage(TextOptions(lang_backend="langdetect", lang_seed=3))
    texts = ["ok", "sol", "Paris", "hola que tal", "big fish"]
    first = [stage.process(raw(title=t)).record["lang_score"] for t in texts]
    other = pickle.loads(pickle.dumps(stage))
    again = [other.process(raw(title=t)).record["lang_score"] for t in reversed(texts)]
    assert first == list(reversed(again))


def test_caption_styles_and_truncation() -> None:
    args = ("Title here", ["t1", "t2"], "Line one\nline two")
    assert make_caption(*args) == "Title here t1 t2 Line one line two"
    assert make_caption(*args, style="semicolon") == "Title here; t1, t2; Line one line two"
    assert make_caption(*args, style="title") == "Title here"
    assert make_caption(*args, style="title_tags") == "Title here t1 t2"
    assert make_caption(*args, max_words=3) == "Title here t1"
    assert make_caption(*args, style="semicolon", max_words=2) == "Title here"
    assert make_caption("", [], "Only desc") == "Only desc"
    stage = TextStage(TextOptions(caption_style="title", lang_backend="none"))
    assert stage.process(raw(title="T", tags=["x"])).record["caption"] == "T"


def test_camera_filenames() -> None:
    for t in (
        "IMG_4711",
        "DSC00023",
        "dscn1234.JPG",
        "P1010123",
        "_MG_1234",
        "100_1234",
        "20120512_134501",
        "holiday.jpg",
    ):
        assert is_camera_filename(t), t
    for t in ("1984", "Sunset at the lake", "Pike", "IMG of my dog", "Route 66"):
        assert not is_camera_filename(t), t
    f = CameraFilenameFilter("strip")
    rec = {"title": "IMG_4711", "tags": [], "description": ""}
    changed: set[str] = set()
    assert f(rec, changed) is None and rec["title"] == "" and changed == {"camera_filename_stripped"}
    d = CameraFilenameFilter("drop")
    assert d({"title": "DSC_0001"}) == "camera_filename" and d({"title": "A cat"}) is None
    assert d.kept == 1 and d.dropped == {"camera_filename": 1}


def test_boilerplate_and_machine_tags() -> None:
    b = BoilerplateFilter("strip")
    rec = {"description": "A pike from the lake.\nUploaded with Flickr Mobile\n© 2009 All rights reserved"}
    assert b(rec) is None and rec["description"] == "A pike from the lake."
    keep = {"description": "Copyright law is interesting, says this sign."}
    assert b(keep) is None and keep["description"].startswith("Copyright law")
    assert is_machine_tag("geo:lat=52.5") and is_machine_tag("upload:by=flickrmobile")
    assert not is_machine_tag("sunset") and not is_machine_tag("10:30")
    m = MachineTagFilter("drop")
    assert m({"tags": ["a", "geo:lon=1"]}) == "machine_tags" and m({"tags": ["a"]}) is None


def test_blocklist_whole_words_and_phrases() -> None:
    f = BlocklistFilter(("nsfw", "bad phrase"))
    assert f({"caption": "Some NSFW stuff"}) == "blocklist"
    assert f({"caption": "a bad phrase here"}) == "blocklist"
    assert f({"caption": "badphrase nsfwx phrase bad"}) is None


def test_record_filters_name_their_reasons() -> None:
    o = TextOptions(
        drop_empty=True, lang_allow=("en",), lang_min_score=0.5, min_caption_chars=5, max_caption_chars=60
    )
    stage = TextStage(o)
    assert stage.process(raw()).reason == "empty_text"
    assert stage.process(raw(title="Der große Hecht schwimmt im kalten See")).reason == "lang_not_allowed"
    assert stage.process(raw(title="A big pike swimming in the cold lake")).reason is None
    assert stage.process(raw(title="Fish")).reason in ("too_short", "lang_low_confidence", "lang_not_allowed")
    assert stage.process(raw(title="The big pike " * 10)).reason == "too_long"
    assert stage.process(raw(title="1234 5678")).reason == "lang_unknown"


def test_options_validation_and_cli(tmp_path) -> None:
    with pytest.raises(UsageError):
        TextOptions(caption_style="nope")
    with pytest.raises(UsageError):
        TextOptions(lang_allow=("en",), lang_backend="none")
    block = tmp_path / "block.txt"
    block.write_text("# comment\nFoo\n\nbar  baz\n", encoding="utf-8")
    parser = argparse.ArgumentParser()
    add_text_arguments(parser)
    args = parser.parse_args(
        ["--caption-style", "semicolon", "--lang-allow", "en, de", "--blocklist", str(block)]
    )
    o = text_options_from_args(args)
    assert (
        o.caption_style == "semicolon" and o.lang_allow == ("de", "en") and o.blocklist == ("bar baz", "foo")
    )
    assert text_options_from_args(parser.parse_args([])) == TextOptions()
    with pytest.raises(UsageError, match="cannot read"):
        text_options_from_args(parser.parse_args(["--blocklist", str(tmp_path / "missing.txt")]))
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(UsageError, match="UTF-8"):
        text_options_from_args(parser.parse_args(["--blocklist", str(tmp_path / "latin1.txt")]))
    json.dumps(o.to_report())


def test_owner_duplicates_exact_and_near() -> None:
    descs = [
        "All photos taken with my Nikon D70 in Berlin, please ask before use",
        "all photos taken with my  Nikon D70 in Berlin, please ask before use",
        "All photos taken with my Nikon D70 in Berlin, please ask before use!!",
        "A completely different text about a fish",
        "",
    ]
    assert duplicate_of(descs, 1.0) == [None, 0, None, None, None]
    assert duplicate_of(descs, 0.8) == [None, 0, 0, None, None]
    items = [({"key": f"n0_{i}", "description": d}, set()) for i, d in enumerate(descs)]
    kept, dropped = dedupe_owner(list(reversed(items)), "once", 0.8)  # arrival order must not matter
    assert [r["key"] for r, _ in kept] == [f"n0_{i}" for i in range(5)]
    assert (
        kept[0][0]["description"] == descs[0]
        and kept[1][0]["description"] == ""
        and kept[2][0]["description"] == ""
    )
    assert "owner_duplicate_stripped" in kept[1][1]
    items = [({"key": f"n0_{i}", "description": d}, set()) for i, d in enumerate(descs)]  # "once" edited them
    kept, dropped = dedupe_owner(items, "drop", 0.8)
    assert [k for k, _ in dropped] == ["n0_1", "n0_2"] and len(kept) == 3


def test_percentiles_exact() -> None:
    from collections import Counter

    h = Counter({i: 1 for i in range(1, 101)})
    p = percentiles(h)
    assert p["p50"] == 50 and p["p99"] == 99 and p["p1"] == 1 and p["max"] == 100 and p["mean"] == 50.5
    assert percentiles(Counter())["p50"] is None


def test_stats_merge_equals_single_pass_and_adds_up() -> None:
    stage = TextStage(TextOptions(drop_empty=True, lang_backend="fasttext"))
    outs = [
        stage.process(raw(key=f"n0_{i}", title="A fish" if i % 3 else "", tags=["x"] * (i % 2)))
        for i in range(30)
    ]
    whole = TextStats()
    for o in outs:
        whole.add(o)
    a, b = TextStats(), TextStats()
    for i, o in enumerate(outs):
        (a if i % 2 else b).add(o)
    merged = a.merge(b).to_dict()
    assert merged == whole.to_dict()
    assert merged["written"] + sum(merged["dropped"].values()) == merged["input"] == 30
    assert merged["dropped"] == {"empty_text": 5}
    assert merged["non_empty"]["title"] == 20
    assert merged["length_chars"]["title"]["count"] == 20 and merged["length_chars"]["title"]["min"] == 6
    assert merged["tags_per_record"]["count"] == 15  # only the records that have tags (odd i)
    json.dumps(merged)
