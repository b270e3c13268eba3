"""The header check's end-of-image rule: bytes after the marker are not truncation; a missing marker is.

A JPEG is truncated when no end-of-image marker (FF D9) follows its first scan. Inside entropy-coded
data every FF byte is stuffed as FF 00 (or is a restart marker, FF D0-D7), so FF D9 after the scan
starts can only be the marker itself; FF D9 before it (a comment, an EXIF thumbnail) says nothing.
A file with bytes after its marker is kept as it is: decoders stop at the marker, and the stored
bytes stay the source's bytes, whose sha256 a rebuild from a text release must match.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from imagenet_captions.images import ImageError, ImageOptions, process_image


def _jpeg(**save: object) -> bytes:
    rng = np.random.default_rng(5)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8), "RGB").save(buf, "JPEG", **save)
    return buf.getvalue()


BASELINE = _jpeg()
PROGRESSIVE = _jpeg(progressive=True)
#: A comment segment holding FF D9 before the scan: what an embedded thumbnail's end marker looks like.
COMMENTED = _jpeg(comment=b"thumbnail ends \xff\xd9 here")


def _with_junk(data: bytes) -> bytes:
    """Junk bytes after the first header segment: the fast path steps aside and Pillow opens it."""
    after = 4 + int.from_bytes(data[4:6], "big")
    return data[:after] + b"\x00\x00" + data[after:]


JUNK = _with_junk(BASELINE)
#: Where to look for the progressive JPEG's second scan: past its first one's marker.
SECOND_SCAN_FROM = PROGRESSIVE.index(b"\xff\xda") + 2

TRAILERS = {
    "zeros": b"\x00" * 100,
    "text": b"garbage appended by a broken downloader\n" * 3,
    "random": np.random.default_rng(7).integers(0, 256, 500, dtype=np.uint8).tobytes(),
    "another-jpeg": BASELINE,
    "ff-bytes": b"\xff\xff\xff",
}


def _decoded(data: bytes) -> np.ndarray:
    im = Image.open(io.BytesIO(data))
    im.load()
    return np.asarray(im)


@pytest.mark.parametrize("verify", ["header", "draft", "full"])
@pytest.mark.parametrize("trailer", sorted(TRAILERS))
@pytest.mark.parametrize("name", ["baseline", "progressive", "junk"])
def test_bytes_after_the_end_marker_are_kept_as_they_are(name, trailer, verify):
    jpeg = {"baseline": BASELINE, "progressive": PROGRESSIVE, "junk": JUNK}[name]
    data = jpeg + TRAILERS[trailer]
    out, info = process_image(data, ImageOptions(verify=verify))
    assert out == data and info["image_action"] == "kept" and info["jpg_bytes"] == len(data)
    assert (_decoded(out) == _decoded(jpeg)).all()  # the decoder stops at the marker


def _cut_mid_scan(data: bytes) -> bytes:
    """``data`` cut halfway through its first scan's entropy-coded data."""
    scan = data.index(b"\xff\xda")
    return data[: scan + (len(data) - scan) // 2]


@pytest.mark.parametrize("verify", ["header", "draft", "full"])
@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("baseline", _cut_mid_scan(BASELINE)),
        ("zero-padded", _cut_mid_scan(BASELINE) + b"\x00" * 4096),
        ("text-after-the-cut", _cut_mid_scan(BASELINE) + TRAILERS["text"]),
        ("ff-d9-in-a-comment", _cut_mid_scan(COMMENTED)),
        ("progressive-between-scans", PROGRESSIVE[: PROGRESSIVE.index(b"\xff\xda", SECOND_SCAN_FROM)]),
        ("junk-in-header", _cut_mid_scan(JUNK)),
        ("end-marker-cut-in-half", BASELINE[:-1]),
    ],
)
def test_a_file_with_no_end_marker_after_its_first_scan_is_truncated(name, data, verify):
    with pytest.raises(ImageError) as e:
        process_image(data, ImageOptions(verify=verify))
    assert e.value.reason == "corrupt_image"


def test_header_check_names_the_truncation():
    with pytest.raises(ImageError, match="end-of-image marker after the first scan"):
        process_image(_cut_mid_scan(COMMENTED))


def test_a_commented_jpeg_is_kept():
    assert b"\xff\xd9" in COMMENTED[: COMMENTED.index(b"\xff\xda")]
    out, info = process_image(COMMENTED)
    assert out is COMMENTED and info["image_action"] == "kept"
