import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from imagenet_captions.images import ImageError, ImageOptions, process_image


def _photo(mode="RGB", fmt="JPEG", size=(200, 150)):
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
    arr = np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1) + rng.normal(0, 5, (size[1], size[0], 3))
    im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if mode != "RGB":
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def _decoded(data):
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_plain_jpegs_keep_their_bytes(mode):
    data = _photo(mode)
    out, info = process_image(data)
    assert out is data or out == data
    assert info["image_action"] == "kept" and info["image_mode"] == mode and info["jpg_bytes"] == len(data)


@pytest.mark.parametrize(("mode", "fmt"), [("CMYK", "JPEG"), ("RGB", "PNG"), ("RGBA", "PNG"), ("P", "PNG")])
def test_odd_images_become_rgb_jpeg(mode, fmt):
    out, info = process_image(_photo(mode, fmt))
    im = _decoded(out)
    assert im.format == "JPEG" and im.mode == "RGB" and im.size == (200, 150)
    assert info["image_action"] == "reencoded" and info["image_format"] == fmt and info["image_mode"] == mode


def test_transparent_png_is_composited_on_white():
    im = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    out, _ = process_image(buf.getvalue())
    assert min(_decoded(out).getpixel((10, 10))) > 240


@pytest.mark.parametrize("verify", ["draft", "full", "header"])
def test_truncated_and_empty_files_are_corrupt_with_the_decoders_message(verify):
    data = _photo()
    with pytest.raises(ImageError) as e:
        process_image(data[: len(data) // 2], ImageOptions(verify=verify))
    assert e.value.reason == "corrupt_image" and e.value.message
    with pytest.raises(ImageError, match="empty"):
        process_image(b"")
    with pytest.raises(ImageError, match="corrupt_image"):
        process_image(b"\xff\xd8\xff\xe0garbage that is no jpeg")


def _png_header_only(width, height):
    """A PNG that claims width x height (its pixel data is absent): what a bomb looks like to a header parser."""

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(ImageError) as e:
        process_image(_png_header_only(30_000, 30_000))
    assert e.value.reason == "too_large" and "30000x30000" in e.value.message


def test_resize_shorter_side_and_never_enlarge():
    out, info = process_image(_photo(size=(500, 375)), ImageOptions(resize=256))
    assert _decoded(out).size == (341, 256) and info["image_action"] == "resized"
    assert (info["width"], info["height"], info["jpg_width"], info["jpg_height"]) == (500, 375, 341, 256)
    out, info = process_image(_photo(size=(120, 90)), ImageOptions(resize=256))
    assert info["image_action"] == "kept"
    out, info = process_image(_photo("CMYK", size=(300, 600)), ImageOptions(resize=256))
    assert _decoded(out).size == (256, 512) and _decoded(out).mode == "RGB"


def test_options_are_checked():
    with pytest.raises(ValueError):
        ImageOptions(verify="maybe")
    with pytest.raises(ValueError):
        ImageOptions(resize=0)
