"""One definition of an ImageNet image id (classes.parse_image_id), used by every reader of ids.

An id is the wnid (``n`` + 8 ASCII digits), ``_``, then 1 to 9 ASCII digits in canonical form (no
leading zero). Anything else is a named reason wherever it is read (the release file, the URL list,
a response store), never a key and never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagenet_captions.classes import WNID_RE, is_wnid, parse_image_id
from imagenet_captions.flickr.store import JournalWriter, StoredAnswer
from imagenet_captions.flickr.urls import parse_line
from imagenet_captions.outcomes import Drop
from imagenet_captions.sources.release import to_raw_record
from imagenet_captions.sources.responses import ResponsesSource

BAD_IDS = [
    "n01440764_1\n",  # `$` matched before a trailing newline
    "n01440764_\u0661",  # an Arabic-Indic digit (`\d` is Unicode)
    "n01440764_\uff11",  # a fullwidth digit
    "n01440764_01",  # a leading zero: the same image as n01440764_1 under another key
    "n01440764_00",
    "n01440764_" + "9" * 5000,  # int() of it raised ValueError (more than 4300 digits)
    "n01440764_1234567890",  # ten digits
    "n01440764_",
    "n0144076_1",
    "n014407640_1",
    "N01440764_1",
    " n01440764_1",
    "n01440764_1 ",
    "n\u0661\u0661440764_1",
    "n01440764_1_2",
    "n01440764-1",
]
GOOD_IDS = [("n01440764_10026", ("n01440764", 10026)), ("n01440764_0", ("n01440764", 0)),
            ("n15075141_999999999", ("n15075141", 999_999_999))]  # fmt: skip


@pytest.mark.parametrize("stem", BAD_IDS)
def test_a_bad_image_id_is_not_parsed(stem: str) -> None:
    assert parse_image_id(stem) is None


@pytest.mark.parametrize(("stem", "parsed"), GOOD_IDS)
def test_good_image_ids_parse(stem: str, parsed: tuple[str, int]) -> None:
    assert parse_image_id(stem) == parsed


def test_a_wnid_is_n_and_eight_ascii_digits_exactly() -> None:
    for bad in ("n01440764\n", "n0144076\u0661", "n0144076", "n014407640", "x01440764"):
        assert not is_wnid(bad) and not WNID_RE.match(bad)
    assert is_wnid("n01440764") and WNID_RE.match("n01440764")


@pytest.mark.parametrize("stem", BAD_IDS)
def test_a_release_record_with_a_bad_id_is_a_named_drop(stem: str) -> None:
    item = {"filename": f"{stem}.JPEG", "title": "t", "tags": [], "description": "", "wnid": "n01440764"}
    out = to_raw_record(item)
    assert not isinstance(out, dict) and out.reason == "bad_filename"


@pytest.mark.parametrize("stem", [s for s in BAD_IDS if s.strip() == s and "\n" not in s])
def test_a_url_list_line_with_a_bad_id_is_malformed(stem: str) -> None:
    line = f"{stem}\thttp://farm4.static.flickr.com/3175/2737866473_7958dc8760.jpg\n"
    assert parse_line(line.encode("utf-8")).outcome == "malformed"


def test_a_store_image_id_that_is_not_one_is_a_named_drop(tmp_path: Path) -> None:
    """A store written by an older version (or by hand) may hold ids the URL list now refuses."""
    raw = json.dumps({"stat": "ok", "photo": {"id": "7", "title": {"_content": "t"}, "description": {"_content": ""}}})
    ids = ["n01440764_7", "n01440764_07", "n01440764_\uff17", "n01440764_" + "7" * 5000]
    j = JournalWriter(str(tmp_path), "r")
    j.append(StoredAnswer(7, ids, "ok", None, None, 1.7e9, 1, "r", raw)).result(timeout=10)
    j.close()
    source = ResponsesSource(str(tmp_path), None)
    out = [x for part in source.parts(1) for x in source.read(part)]
    kept = [x["key"] for x in out if isinstance(x, dict)]
    dropped = sorted((x.reason, x.key) for x in out if not isinstance(x, dict))
    assert kept == ["n01440764_7"]
    assert [r for r, _ in dropped] == ["bad_filename"] * 3


def test_a_text_release_row_whose_key_is_not_an_image_id_is_a_named_drop(tmp_path: Path) -> None:
    """A downloaded release's keys become tar members' names in the rebuild: only image ids may."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from imagenet_captions import layout
    from imagenet_captions.sources.text_release import TextReleaseSource

    keys = ["n01440764_7", "n01440764_7\n", "n01440764_\uff17", "n01440764_07", None, "n01443537_3"]
    wnids = ["n01440764"] * 5 + ["n01440764"]  # the last row's wnid is not its key's
    (tmp_path / "captions").mkdir()
    pq.write_table(pa.table({"key": keys, "wnid": wnids, "label": [0] * 6, "caption": ["c"] * 6}),
                   tmp_path / "captions" / "00000.parquet")  # fmt: skip
    source = TextReleaseSource.__new__(TextReleaseSource)  # the manifest is the download's business
    source.path, source.num_shards = str(tmp_path), 1
    assert layout.shard_of("n01440764_7", 1) == 0
    out = list(source.read(("00000", "captions/00000.parquet")))
    kept = [getattr(x, "record", x) for x in out if not isinstance(x, Drop)]  # a row, as a dict or published
    assert [r["key"] for r in kept] == ["n01440764_7"]
    assert sorted(x.reason for x in out if isinstance(x, Drop)) == ["bad_filename"] * 4 + ["wnid_mismatch"]


@pytest.mark.parametrize("photo_id", ["9" * 5000, "99999999999999999999", 2**63, -(2**63) - 1, 1.5e300, float("inf"), True])
def test_a_photo_id_the_records_cannot_hold_is_none_not_a_crash(photo_id: object) -> None:
    """A record's photo_id is an int64 column: a value beyond it failed the shard writer."""
    item = {"filename": "n01440764_1.JPEG", "title": "t", "tags": [], "description": "", "wnid": "n01440764",
            "photo_id": photo_id}  # fmt: skip
    out = to_raw_record(item)
    assert isinstance(out, dict) and out["photo_id"] is None
