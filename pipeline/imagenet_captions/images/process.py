"""Decide, per image, what bytes a shard stores, decoding no more than needed.

ImageNet's training set is ~1.28M JPEGs, almost all baseline RGB, which are stored as they are: their
original bytes, verified by a reduced-size decode (libjpeg's DCT scaling, ``draft``), which still
reads every entropy-coded byte and so catches truncated and corrupt files at a fraction of a full
decode's cost. The odd ones are re-encoded to RGB JPEG so every ``.jpg`` member decodes on any JPEG
decoder (GPU decoders included): CMYK JPEGs (22 in the train set), a PNG named ``.JPEG``, and any
other format or mode. ``resize`` makes training-ready shards (shorter side, draft then a
high-quality filter, fixed JPEG quality).

Failures are :class:`ImageError` with a named reason and the decoder's message, never a crash.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import Image

# Our own bound (below) gives a named reason; Pillow's global one would raise its own error type.
Image.MAX_IMAGE_PIXELS = None

#: Modes a JPEG may keep its original bytes in: every decoder reads baseline RGB (YCbCr) and greyscale.
PASS_THROUGH_MODES = ("RGB", "L")


@dataclass(frozen=True)
class ImageOptions:
    """How images are checked and stored.

    resize: shorter side in pixels for resized shards (None: original size). Images already smaller
      are not enlarged.
    quality: JPEG quality of re-encoded and resized images (fixed, so builds are reproducible).
    max_pixels: decompression-bomb bound; larger images are refused (``too_large``) before decoding.
    verify: "draft" (reduced-size decode of pass-through JPEGs), "full" (full decode), or "header"
      (parse the header and require the end-of-image marker; no decode).
    """

    resize: int | None = None
    quality: int = 95
    max_pixels: int = 100_000_000
    verify: str = "draft"

    def __post_init__(self) -> None:
        if self.verify not in ("draft", "full", "header"):
            raise ValueError(f"verify must be draft, full or header, not {self.verify!r}")
        if self.resize is not None and self.resize < 8:
            raise ValueError(f"resize must be at least 8 pixels, not {self.resize}")


class ImageError(Exception):
    """An image that cannot be stored: ``reason`` names it for the report, the message says why."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def process_image(data: bytes, options: ImageOptions = ImageOptions()) -> tuple[bytes, dict[str, Any]]:
    """The bytes to store for one image and what was done: ``(jpeg_bytes, info)``.

    ``info`` has the schema's image columns: image_format, image_mode, width, height, jpg_width,
    jpg_height, jpg_bytes, image_action ("kept", "reencoded" or "resized").
    """
    if not data:
        raise ImageError("corrupt_image", "empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns on odd EXIF etc.; the checks below decide
            im = Image.open(io.BytesIO(data))
            fmt, mode, (width, height) = im.format or "unknown", im.mode, im.size
            if width * height > options.max_pixels:
                raise ImageError(
                    "too_large", f"{width}x{height} pixels exceeds the bound of {options.max_pixels}"
                )
            info: dict[str, Any] = {"image_format": fmt, "image_mode": mode, "width": width, "height": height}
            odd = fmt != "JPEG" or mode not in PASS_THROUGH_MODES
            target = _target_size(width, height, options.resize)
            if not odd and target is None:
                _verify_jpeg(im, data, options.verify)
                out, action = data, "kept"
            else:
                if target is not None and fmt == "JPEG":
                    im.draft("RGB" if mode != "L" else "L", target)  # DCT scaling: decode at >= target size
                im.load()
                im = _to_rgb(im) if odd else im
                if target is not None:
                    im = im.resize(target, Image.Resampling.LANCZOS)
                out = _encode_jpeg(im, options.quality)
                action = "resized" if target is not None else "reencoded"
                width_out, height_out = im.size
                info.update(
                    jpg_width=width_out, jpg_height=height_out, jpg_bytes=len(out), image_action=action
                )
                return out, info
    except ImageError:
        raise
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, struct.error ... on bad files
        raise ImageError("corrupt_image", f"{type(e).__name__}: {e}") from None
    info.update(jpg_width=width, jpg_height=height, jpg_bytes=len(out), image_action=action)
    return out, info


def _target_size(width: int, height: int, resize: int | None) -> tuple[int, int] | None:
    """Size after scaling the shorter side to ``resize``; None when no resize is asked or needed."""
    if resize is None or min(width, height) <= resize:
        return None
    if width <= height:
        return resize, max(1, round(height * resize / width))
    return max(1, round(width * resize / height)), resize


def _verify_jpeg(im: Image.Image, data: bytes, how: str) -> None:
    if how == "header":
        if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
            raise ImageError("corrupt_image", "no JPEG end-of-image marker (truncated file)")
        return
    if how == "draft":
        im.draft(im.mode, (max(1, im.size[0] // 8), max(1, im.size[1] // 8)))
    im.load()


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB, with transparency composited on white (a transparent PNG should not turn black)."""
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGB", im.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    return im.convert("RGB")


def _encode_jpeg(im: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, optimize=False, progressive=False)
    return buf.getvalue()
