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


def test_a_utf8_bom_is_dropped_not_refused(tmp_path):
    """Windows tools and some editors write a byte order mark before the JSON: the file is still the release."""
    records = [dict(REC, filename=f"n01440764_{i}.JPEG", title="caf\u00e9") for i in range(3)]
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(records, ensure_ascii=False).encode("utf-8"))
    z = tmp_path / "bom.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(path, "imagenet_captions.json")
    assert list(iter_release_items(path)) == records
    assert list(iter_release_items(z)) == records
    assert count_release_records(path) == 3
    path.write_bytes(b"\xef\xbb\xbf\xef\xbb\xbf[]")  # only the first mark is a BOM: the second is not JSON
    with pytest.raises(ReleaseFormatError):
        count_release_records(path)


def _nested(depth: int, text: str) -> object:
    """A record whose description holds ``text``, nested inside ``depth - 2`` more lists (so the deepest
    list is at ``depth``, counting the top-level list and the record)."""
    value: object = []
    for _ in range(depth - 3):
        value = [value]
    return [dict(REC, description=text, extra=value)]


# Strings that look like nesting, or like the end of a string, to a scanner that does not know JSON.
TRICKY = '[[[{{{ "]]]}}} \\ \\" \\\\" "[" \u00e9\u65e5 ' + "[" * 100


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64, 1 << 20])
def test_nesting_is_counted_outside_strings_across_chunk_boundaries(chunk):
    """The depth guard sees the stream in chunks that cut strings, escapes and characters anywhere."""
    from imagenet_captions.flickr.release_json import MAX_DEPTH, _DepthGuard

    for depth, refused in ((MAX_DEPTH, False), (MAX_DEPTH + 1, True)):
        data = json.dumps(_nested(depth, TRICKY), ensure_ascii=False).encode("utf-8")
        data = data.replace(b'"extra"', b'"a\\\\":"\\\\","extra"')  # escaped backslashes before quotes
        json.loads(data)  # still valid JSON
        guard = _DepthGuard("x.json")
        try:
            for i in range(0, len(data), chunk):
                guard.feed(data[i : i + chunk], i)
        except ReleaseFormatError as e:
            assert refused, e
            assert "nested deeper than 64" in str(e)
        else:
            assert not refused and guard.depth == 0 and not guard.in_string


def test_deep_nesting_is_one_line_and_exit_2_within_1_gb(tmp_path):
    """200 kB of brackets took ijson 22 GB (its memory grows with the square of the depth). The build
    runs under a 1 GB address-space limit, so the old code fails with MemoryError, not the machine."""
    import resource
    import subprocess
    import sys

    path = tmp_path / "deep.json"
    path.write_bytes(b"[" * 100_000 + b"]" * 100_000)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    done = subprocess.run(
        [sys.executable, "-m", "imagenet_captions.cli", "build", "--metadata", f"release:{path}",
         "--out", str(tmp_path / "out")],
        preexec_fn=limit, capture_output=True, timeout=300,
    )  # fmt: skip
    err = done.stderr.decode()
    assert done.returncode == 2, err[-2000:]
    assert len(err.strip().splitlines()) == 1 and "nested deeper than 64 levels" in err
    assert "Traceback" not in err


def test_the_depth_guard_agrees_with_a_parser_on_random_documents():
    """Random values with strings made of quotes, backslashes and brackets, cut into random chunks:
    the guard refuses exactly the documents deeper than 64 and ends every other one at depth 0."""
    import random

    from imagenet_captions.flickr.release_json import MAX_DEPTH, _DepthGuard

    rng = random.Random(7)
    alphabet = ['"', "\\", "[", "]", "{", "}", "a", "\u00e9", "\n", "/", '\\"']

    def value(levels: int) -> object:
        if levels == 0 or rng.random() < 0.3:
            return "".join(rng.choices(alphabet, k=rng.randrange(12)))
        if rng.random() < 0.5:
            return [value(levels - 1) for _ in range(rng.randrange(1, 3))]
        return {value(0): value(levels - 1) for _ in range(rng.randrange(1, 3))}  # type: ignore[misc]

    def depth(v: object) -> int:
        if isinstance(v, list):
            return 1 + max((depth(x) for x in v), default=0)
        if isinstance(v, dict):
            return 1 + max((depth(x) for x in v.values()), default=0)
        return 0

    verdicts = []
    for _ in range(300):
        doc, target = value(rng.randrange(6)), MAX_DEPTH - 1 + rng.randrange(3)
        while depth(doc) < target:
            doc = [doc, value(2)] if rng.random() < 0.5 else {"k\\": doc}
        data = json.dumps(doc, ensure_ascii=rng.random() < 0.5).encode("utf-8")
        guard, refused, i = _DepthGuard("x"), False, 0
        try:
            while i < len(data):
                n = rng.randrange(1, 40)
                guard.feed(data[i : i + n], i)
                i += n
        except ReleaseFormatError:
            refused = True
        assert refused == (depth(doc) > MAX_DEPTH), data
        assert refused or (guard.depth, guard.in_string, guard.escaped) == (0, False, False)
        verdicts.append(refused)
    assert 50 < sum(verdicts) < 250  # both kinds were tried
