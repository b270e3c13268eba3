import json
import zipfile

import pytest

from imagenet_captions.sources.release import (
    ReleaseFormatError,
    count_release_records,
    iter_release_items,
    to_raw_record,
)

REC = {
    "filename": "n01440764_10026.JPEG",
    "title": "t",
    "tags": ["a"],
    "description": "d",
    "wnid": "n01440764",
}


def test_streams_json_and_zip(tmp_path):
    records = [dict(REC, filename=f"n01440764_{i}.JPEG") for i in range(50)]
    path = tmp_path / "imagenet_captions.json"
    path.write_text(json.dumps(records))
    z = tmp_path / "imagenet_captions.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(path, "imagenet_captions.json")
    assert list(iter_release_items(path)) == records
    assert list(iter_release_items(z)) == records
    assert count_release_records(z) == 50


def test_invalid_utf8_is_replaced_not_fatal(tmp_path):
    path = tmp_path / "r.json"
    path.write_bytes(
        b'[{"filename": "n01440764_1.JPEG", "title": "caf\xc3 ok", "tags": [], "description": "", '
        b'"wnid": "n01440764"}]'
    )
    (item,) = iter_release_items(path)
    assert item["title"] == "caf\ufffd ok"


@pytest.mark.parametrize("content", [b"", b"{}", b'{"a": 1}', b'[{"filename": ', b"not json", b"[1, 2,"])
def test_malformed_file_is_one_clear_error(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(ReleaseFormatError):
        count_release_records(path)


def test_missing_file_and_zip_without_json(tmp_path):
    with pytest.raises(ReleaseFormatError.__mro__[1]):
        count_release_records(tmp_path / "nope.json")
    z = tmp_path / "x.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(ReleaseFormatError, match="one .json"):
        count_release_records(z)


def _outcome(item):
    """``to_raw_record``'s answer as (record, reason, key): a record, or the Drop's reason and key."""
    out = to_raw_record(item)
    return (out, None, out["key"]) if isinstance(out, dict) else (None, out.reason, out.key)


def test_to_raw_record_accepts_release_shapes():
    record, reason, key = _outcome(REC)
    assert reason is None and key == "n01440764_10026"
    assert record["tags"] == ["a"] and record["photo_id"] is None
    record, reason, _ = _outcome(dict(REC, title=None, tags=None, description=None))
    assert reason is None and record["title"] == "" and record["tags"] == []


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ([1, 2], "malformed_record"),
        ({"title": "no filename"}, "malformed_record"),
        (dict(REC, filename="IMG_1.jpg"), "bad_filename"),
        (dict(REC, wnid="n09999999"), "wnid_mismatch"),
        (dict(REC, tags=[1, 2]), "malformed_record"),
        (dict(REC, title={"_content": "x"}), "malformed_record"),
    ],
)
def test_to_raw_record_names_the_problem(item, reason):
    record, got, _ = _outcome(item)
    assert record is None and got == reason


def test_lone_surrogates_become_replacement_characters():
    """json.loads (as a harvested store reads Flickr answers) yields lone surrogates; Beam cannot encode them."""
    item = json.loads(
        '{"filename": "n01440764_1.JPEG", "title": "a\\ud800b", "tags": ["\\udfff"], '
        '"description": "ok \\ud83d\\ude00", "wnid": "n01440764"}'
    )
    record, reason, _ = _outcome(item)
    assert reason is None
    assert record["title"] == "a\ufffdb" and record["tags"] == ["\ufffd"]
    assert record["description"] == "ok \U0001f600"  # a proper pair is one character and stays
    for text in (record["title"], *record["tags"], record["description"]):
        text.encode("utf-8")
