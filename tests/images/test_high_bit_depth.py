"""Images with more than 8 bits a sample keep their tones: 16 bits map to 8 by the high byte (v >> 8).

Pillow's own ``convert`` clips 16-bit greyscale at 255, so a 0-65535 ramp came out nearly white and
was counted as written. Pillow already reads 16-bit RGB(A) PNGs and TIFFs by their high byte; the
rule for greyscale is the same, so one picture stored both ways gives the same 8-bit tones.
Floating-point pixels, and integers beyond 16 bits, have no tone scale to map: a named drop.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from imagenet_captions.images import ImageError, ImageOptions, process_image

WIDTH, HEIGHT = 512, 16
#: A horizontal 16-bit ramp, black to white, each column one value (not multiples of 257, so the
#: low byte is not a copy of the high one).
RAMP = np.tile(np.linspace(0, 65535, WIDTH).round().astype(np.uint16), (HEIGHT, 1))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png16(samples: np.ndarray, colour_type: int) -> bytes:
    """A 16-bit PNG written by hand (Pillow writes 16-bit PNGs only for greyscale)."""
    height, width = samples.shape[:2]
    rows = samples.astype(">u2").reshape(height, -1)
    raw = b"".join(b"\0" + row.tobytes() for row in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    chunks = _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def _saved(im: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def _pgm(samples: np.ndarray, maxval: int) -> bytes:
    height, width = samples.shape
    return f"P5\n{width} {height}\n{maxval}\n".encode() + samples.astype(">u2").tobytes()


def _grey_16(fmt: str) -> bytes:
    if fmt == "png":
        return _png16(RAMP, 0)
    if fmt == "tiff-le":
        return _saved(Image.frombytes("I;16", (WIDTH, HEIGHT), RAMP.astype("<u2").tobytes()), "TIFF")
    if fmt == "tiff-be":
        return _saved(Image.frombytes("I;16B", (WIDTH, HEIGHT), RAMP.astype(">u2").tobytes()), "TIFF")
    if fmt == "tiff-int32":
        return _saved(Image.frombytes("I", (WIDTH, HEIGHT), RAMP.astype("<i4").tobytes()), "TIFF")
    if fmt == "pgm-16":
        return _pgm(RAMP, 65535)
    if fmt == "pgm-12":  # Pillow scales a maxval of 4095 to 0..65535
        return _pgm(RAMP >> 4, 4095)
    raise AssertionError(fmt)


def _decoded(data: bytes) -> np.ndarray:
    im = Image.open(io.BytesIO(data))
    assert im.format == "JPEG" and im.mode == "RGB"
    return np.asarray(im).astype(float)


def _assert_tones(out: bytes, expected: np.ndarray) -> None:
    """Column by column within JPEG's error of ``expected`` (8-bit), and never darker to the right."""
    got = _decoded(out)
    columns = got.mean(axis=(0, 2))
    assert np.abs(columns - expected).max() <= 2.0, np.abs(columns - expected).max()
    assert abs(got.mean() - expected.mean()) <= 0.5
    assert np.diff(columns).min() >= -1.0  # JPEG may ripple by a level; a ramp never turns back


@pytest.mark.parametrize("fmt", ["png", "tiff-le", "tiff-be", "tiff-int32", "pgm-16", "pgm-12"])
def test_a_16_bit_grey_ramp_keeps_its_tones(fmt):
    data = _grey_16(fmt)
    mode = Image.open(io.BytesIO(data)).mode
    assert mode.startswith("I"), mode  # the modes this is about: I;16, I;16B, I
    out, info = process_image(data)
    assert info["image_action"] == "reencoded" and info["image_mode"] == mode
    scale = (RAMP >> 4).astype(np.int64) * 65535 // 4095 if fmt == "pgm-12" else RAMP
    _assert_tones(out, (scale[0] >> 8).astype(float))


def test_a_resized_16_bit_ramp_keeps_its_tones():
    out, info = process_image(_png16(np.repeat(RAMP, 4, axis=0), 0), ImageOptions(resize=32))
    assert info["image_action"] == "resized" and (info["jpg_width"], info["jpg_height"]) == (256, 32)
    expected = (RAMP[0] >> 8).astype(float).reshape(-1, 2).mean(axis=1)
    got = _decoded(out).mean(axis=(0, 2))
    assert np.abs(got - expected)[4:-4].max() <= 2.0  # the filter's edges aside
    assert abs(got.mean() - expected.mean()) <= 1.0


def test_16_bit_colour_and_grey_alpha_pngs_keep_their_tones():
    rgb = np.stack([RAMP, RAMP, RAMP], axis=-1)
    out, _ = process_image(_png16(rgb, 2))
    _assert_tones(out, (RAMP[0] >> 8).astype(float))
    grey_alpha = np.stack([RAMP, np.full_like(RAMP, 65535)], axis=-1)
    out, _ = process_image(_png16(grey_alpha, 4))
    _assert_tones(out, (RAMP[0] >> 8).astype(float))


def test_float_pixels_are_a_named_drop():
    ramp = Image.frombytes("F", (WIDTH, HEIGHT), (RAMP / 65535).astype("<f4").tobytes())
    with pytest.raises(ImageError) as e:
        process_image(_saved(ramp, "TIFF"))
    assert e.value.reason == "unsupported_image" and "floating-point" in e.value.message


@pytest.mark.parametrize("values", [RAMP.astype(np.int64) * 1000, RAMP.astype(np.int64) - 32768])
def test_32_bit_integers_beyond_16_bits_are_a_named_drop(values):
    im = Image.frombytes("I", (WIDTH, HEIGHT), values.astype("<i4").tobytes())
    with pytest.raises(ImageError) as e:
        process_image(_saved(im, "TIFF"))
    assert e.value.reason == "unsupported_image" and "0..65535" in e.value.message
