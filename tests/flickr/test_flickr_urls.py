"""MATCH: every form of Flickr URL gives its photo id; every line gets exactly one outcome."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import pytest
from flickr_helpers import SAMPLE_URLS

from imagenet_captions.errors import UsageError
from imagenet_captions.flickr.urls import (
    base58_decode,
    base58_encode,
    in_synsets,
    iter_lines,
    parse_line,
    photo_id_from_url,
)


@pytest.mark.parametrize(
    "url, photo_id",
    [
        ("http://farm4.static.flickr.com/3175/2737866473_7958dc8760.jpg", 2737866473),
        ("http://farm1.static.flickr.com/223/449257901_c861ef2bda.jpg?v=0", 449257901),
        ("http://farm4.static.flickr.com/3175/2737866473_7958dc8760_b.jpg", 2737866473),
        ("http://farm4.static.flickr.com/3175/2737866473_fef2098658_o.png", 2737866473),
        ("https://farm8.staticflickr.com/7840/33213028138_b119361ce4_z.jpg", 33213028138),
        ("http://static.flickr.com/1189/820581301_d35d18ba6a.jpg", 820581301),
        ("http://photos12.flickr.com/18756827_7d8d8432df.jpg", 18756827),
        ("http://photos.flickr.com/18756827_7d8d8432df.jpg", 18756827),
        ("https://live.staticflickr.com/699/22337474460_a84043078e_b.jpg", 22337474460),
        ("https://c1.staticflickr.com/1/699/22337474460_a84043078e_n.jpg", 22337474460),
        ("https://www.flickr.com/photos/geoffreygilson/22337474460/", 22337474460),
        ("http://flickr.com/photos/81931330@N00/3743398102", 3743398102),
        ("https://www.flickr.com/photos/jacobian/3743398102/in/photostream/", 3743398102),
        ("https://m.flickr.com/photos/jacobian/3743398102", 3743398102),
        ("http://www.flickr.com/photo.gne?id=3743398102", 3743398102),
        ("https://flic.kr/p/" + base58_encode(22337474460), 22337474460),
        ("HTTP://FARM4.STATIC.FLICKR.COM/3175/2737866473_7958dc8760.JPG", 2737866473),
    ],
)
def test_every_url_form_gives_the_photo_id(url: str, photo_id: int) -> None:
    assert photo_id_from_url(url) == photo_id


def test_base58_is_flickrs_alphabet() -> None:
    assert base58_decode("2") == 1 and base58_decode("21") == 58
    assert base58_decode("Z") == 57  # no 0, O, I, l: Z is the last digit
    for n in (1, 57, 58, 3743398102, 22337474460):
        assert base58_decode(base58_encode(n)) == n
    with pytest.raises(ValueError):
        base58_decode("0O")


@pytest.mark.parametrize(
    "line, outcome",
    [
        (b"n00004475_6590\thttp://farm4.static.flickr.com/3175/2737866473_7958dc8760.jpg\n", "matched"),
        (b"n00004475_6590\thttp://farm4.static.flickr.com/3175/2737866473_7958dc8760.jpg\r\n", "matched"),
        (b"n02802426_8015\thttp://www.decathlon.es/products-pictures/gd-asset_11544037.jpg", "not_flickr"),
        (b"n02802426_8015\thttp://notflickr.com/3175/2737866473_7958dc8760.jpg", "not_flickr"),
        (b"n02802426_8015\thttp://www.flickr.com/", "flickr_no_id"),
        (b"n02802426_8015\thttp://farm1.static.flickr.com/images/spaceball.gif", "flickr_no_id"),
        (b"n02802426_8015\thttps://flic.kr/p/0OIl", "flickr_no_id"),
        (b"n02802426_8015 http://farm4.static.flickr.com/3175/2737866473_7958dc8760.jpg", "malformed"),
        (b"n0280_8015\thttp://farm4.static.flickr.com/3175/2737866473_7958dc8760.jpg", "malformed"),
        (b"\xffn02802426_1\thttp://farm4.static.flickr.com/3175/2737866473_7958dc8760.jpg", "malformed"),
        (b"n02802426_8015\t", "malformed"),
        (b"n02802426_8015\thttp://a b.com/x", "malformed"),
        (b"\r\n", "blank"),
        (b"n02802426_1\thttp://www.caf\xe9.fr/\xff.jpg", "not_flickr"),
    ],
)
def test_each_line_has_one_named_outcome(line: bytes, outcome: str) -> None:
    assert parse_line(line).outcome == outcome


def test_invalid_utf8_in_a_flickr_url_still_matches() -> None:
    r = parse_line(b"n02802426_1\thttp://farm4.static.flickr.com/3175/2737866473_7958dc8760.jpg?x=\xff")
    assert (r.outcome, r.image_id, r.photo_id) == ("matched", "n02802426_1", 2737866473)


def test_the_real_sample_yields_every_flickr_id() -> None:
    """Every line of the real 5,000-line sample that mentions Flickr must give its id; the id is the
    number before the first underscore of the file name, checked independently of the matcher."""
    outcomes: Counter = Counter()
    flickr_lines = 0
    for raw in iter_lines(str(SAMPLE_URLS)):
        r = parse_line(raw)
        outcomes[r.outcome] += 1
        url = raw.decode("utf-8").rstrip("\r\n").split("\t", 1)[1]
        if "flickr.com" in url:
            flickr_lines += 1
            expected = int(url.rsplit("/", 1)[1].split("_", 1)[0])
            assert (r.outcome, r.photo_id) == ("matched", expected), url
    assert sum(outcomes.values()) == 5000
    assert flickr_lines == 3101
    assert outcomes == {"matched": 3101, "not_flickr": 1899}


def test_gzip_and_crlf_lists_read_the_same(tmp_path: Path) -> None:
    raw = SAMPLE_URLS.read_bytes()
    crlf = tmp_path / "urls_crlf.txt"
    crlf.write_bytes(raw.replace(b"\n", b"\r\n"))
    gz = tmp_path / "urls.txt.gz"  # recognised by content, not by name
    gz.write_bytes(gzip.compress(raw))
    renamed = tmp_path / "urls_no_suffix"
    renamed.write_bytes(gzip.compress(raw))
    want = [parse_line(x) for x in iter_lines(str(SAMPLE_URLS))]
    for path in (crlf, gz, renamed):
        assert [parse_line(x) for x in iter_lines(str(path))] == want


def test_damaged_gzip_and_missing_file_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "cut.gz"
    bad.write_bytes(gzip.compress(SAMPLE_URLS.read_bytes())[:5000])
    with pytest.raises(UsageError, match="damaged gzip"):
        list(iter_lines(str(bad)))
    with pytest.raises(UsageError, match="cannot read"):
        list(iter_lines(str(tmp_path / "nope.txt")))


def test_synset_filter_counts_other_classes_whatever_their_url() -> None:
    keep = frozenset({"n02802426"})
    flickr = parse_line(b"n00004475_1\thttp://farm4.static.flickr.com/3175/2737866473_7958dc8760.jpg")
    other = parse_line(b"n00004475_2\thttp://example.com/x.jpg")
    mine = parse_line(b"n02802426_1\thttp://example.com/x.jpg")
    assert in_synsets(flickr, keep).outcome == "other_synset" and in_synsets(flickr, keep).photo_id is None
    assert in_synsets(other, keep).outcome == "other_synset"
    assert in_synsets(mine, keep) is mine and in_synsets(flickr, None) is flickr
    assert in_synsets(parse_line(b"garbage"), keep).outcome == "malformed"


@pytest.mark.parametrize(
    "url",
    [
        "http://www.flickr.com/photos/someone/\u00b3/",  # a superscript: isdigit() but int() raised
        "http://www.flickr.com/photo.gne?id=\u00b2",
        "http://farm1.static.flickr.com/1/\u0661\u0662_e8462a8338.jpg",  # Arabic-Indic digits: "photo 12"
        "http://www.flickr.com/photos/someone/" + "9" * 5000 + "/",  # int() of > 4,300 digits raised
        "http://www.flickr.com/photos/someone/99999999999999999999/",  # beyond the store's int64 column
        "https://flic.kr/p/" + "z" * 40,
    ],
)
def test_a_photo_id_that_is_not_ascii_digits_in_int64_is_no_id(url: str) -> None:
    """A Flickr URL whose id part is not a photo id the store can hold is ``flickr_no_id``: never a
    wrong id, never ``not_flickr``, never an exception."""
    assert parse_line(f"n01440764_1\t{url}".encode()).outcome == "flickr_no_id"
