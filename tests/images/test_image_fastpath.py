"""The header fast path (``jpeg_header``) must agree with Pillow wherever it answers, and step aside otherwise."""

import io
import struct

import numpy as np
import pytest
from PIL import Image

from imagenet_captions.images import ImageError, ImageOptions, process_image
from imagenet_captions.images.process import jpeg_header


def _pixels(size=(96, 64)):
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def _jpeg(mode="RGB", size=(96, 64), **save):
    buf = io.BytesIO()
    _pixels(size).convert(mode).save(buf, "JPEG", **save)
    return buf.getvalue()


def _exif():
    exif = Image.Exif()
    exif[0x010F] = "Canon"  # Make
    exif[0x0112] = 6  # Orientation
    return exif


PLAIN = {
    "baseline": _jpeg(),
    "grey": _jpeg("L"),
    "progressive": _jpeg(progressive=True),
    "optimized": _jpeg(optimize=True),
    "444": _jpeg(subsampling=0),
    "restart-markers": _jpeg(restart_marker_blocks=1),
    "exif-icc": _jpeg(exif=_exif(), icc_profile=b"\0" * 300),
    "odd-size": _jpeg(size=(333, 17)),
}


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_fast_path_agrees_with_pillow(name):
    data = PLAIN[name]
    im = Image.open(io.BytesIO(data))
    assert jpeg_header(data) == (im.mode, im.size[0], im.size[1])
    fast, fast_info = process_image(data)
    slow, slow_info = process_image(data, ImageOptions(verify="full"))
    assert fast is data and slow == data and fast_info == slow_info


def _mpo():
    buf = io.BytesIO()
    _pixels().save(buf, "MPO", save_all=True, append_images=[_pixels().rotate(90)])
    return buf.getvalue()


def _png():
    buf = io.BytesIO()
    _pixels().save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "fmt", "action"),
    [
        ("cmyk", _jpeg("CMYK"), "JPEG", "reencoded"),
        ("mpo", _mpo(), "MPO", "reencoded"),
        ("png", _png(), "PNG", "reencoded"),
    ],
)
def test_fast_path_leaves_odd_files_to_pillow(name, data, fmt, action):
    assert jpeg_header(data) is None
    out, info = process_image(data)
    assert info["image_format"] == fmt and info["image_action"] == action
    assert Image.open(io.BytesIO(out)).format == "JPEG"


@pytest.mark.parametrize("cut", [3, 20, 150])
def test_a_file_cut_inside_its_header_is_corrupt(cut):
    data = PLAIN["baseline"][:cut]
    assert jpeg_header(data) is None
    with pytest.raises(ImageError) as e:
        process_image(data)
    assert e.value.reason == "corrupt_image"


def test_junk_in_the_header_goes_to_pillow():
    data = PLAIN["baseline"]
    assert jpeg_header(data[:2] + b"\x00\x00" + data[2:]) is None
    assert jpeg_header(b"GIF89a" + data) is None


def _with_size(data, width, height):
    """``data`` with its frame header claiming ``width`` x ``height`` (what a bomb's header looks like)."""
    at = data.index(b"\xff\xc0")
    return data[: at + 5] + struct.pack(">HH", height, width) + data[at + 9 :]


def test_bomb_bound_applies_on_the_fast_path():
    data = _with_size(PLAIN["baseline"], 30_000, 30_000)
    assert jpeg_header(data) == ("RGB", 30_000, 30_000)
    with pytest.raises(ImageError) as e:
        process_image(data)
    assert e.value.reason == "too_large" and "30000x30000" in e.value.message


def test_missing_end_marker_is_corrupt_on_the_fast_path():
    data = PLAIN["baseline"][:-2]
    assert jpeg_header(data) is not None
    with pytest.raises(ImageError, match="end-of-image"):
        process_image(data)


def test_small_images_are_kept_by_the_fast_path_when_resizing():
    out, info = process_image(PLAIN["baseline"], ImageOptions(resize=64))
    assert out is PLAIN["baseline"] and info["image_action"] == "kept"


@pytest.mark.parametrize("resample", ["lanczos", "bicubic", "bilinear"])
def test_resample_filters(resample):
    out, info = process_image(_jpeg(size=(500, 375)), ImageOptions(resize=256, resample=resample))
    assert Image.open(io.BytesIO(out)).size == (341, 256) and info["image_action"] == "resized"


def test_resample_option_is_checked():
    with pytest.raises(ValueError, match="resample"):
        ImageOptions(resample="nearest-ish")
