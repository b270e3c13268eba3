"""Decide, per image, what bytes a shard stores, decoding no more than needed.

ImageNet's training set is ~1.28M JPEGs, almost all baseline RGB, which are stored as they are: their
original bytes. By default they are checked the cheap way (``verify="header"``): the markers up to the
first scan are parsed (size, components; the decompression-bomb bound) and an end-of-image marker must
follow the first scan (bytes after it are kept), which catches truncated and empty files, at a small
fraction of the cost of a reduced-size decode (``"draft"``: libjpeg's DCT scaling still entropy-decodes
every byte, so it costs nearly a full decode) or a full decode (``"full"``), which also catch corrupt
entropy-coded data (after the same end-of-image rule: libjpeg decodes a zero-padded cut); a shard
stage meant to run at disk speed cannot afford a decode per image (docs/shards.md has the measured
costs).
The odd ones are re-encoded to RGB JPEG so every ``.jpg`` member decodes on any JPEG decoder (GPU
decoders included): CMYK JPEGs (22 in the train set), a PNG named ``.JPEG``, and any other format or
mode; more than 8 bits a sample are scaled to 8, never clipped. ``resize`` makes training-ready shards
(shorter side, draft then a high-quality filter, fixed JPEG quality); the filter runs in
fast_image_resize (SIMD) when ``cykooz-resizer`` is installed, else in Pillow (see :func:`resizer_name`).

Failures are :class:`ImageError` with a named reason and the decoder's message, never a crash.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
import PIL
from PIL import Image

from imagenet_captions.errors import OptionError

# Our own bound (below) gives a named reason; Pillow's global one would raise its own error type.
Image.MAX_IMAGE_PIXELS = None

#: Resize filters by option name (Pillow's; all antialiased when shrinking).
RESAMPLE = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
}


class _FastResizer:
    """The resize filters of fast_image_resize (Rust, SIMD: AVX2/SSE4.1/NEON picked at run time) through
    ``cykooz-resizer``, on Pillow images.

    Why not Pillow's ``Image.resize``: it has no SIMD, so at ImageNet's sizes its LANCZOS costs more
    than the JPEG decode, and the resize falls behind img2dataset (OpenCV's SIMD INTER_AREA).
    fast_image_resize's convolution is the same kind of separable, antialiased filter at a fraction
    of the cost, and its output matches Pillow's closely for the same filter (docs/shards.md has the
    speeds against img2dataset and the PSNR figures). One ``Resizer`` serves the
    process: it is single-threaded (no thread pool given) and safe to share between threads (tested).
    """

    def __init__(self) -> None:
        from cykooz_resizer import FilterType, ResizeAlg, ResizeOptions, Resizer

        self.resizer = Resizer()
        filters = {
            "lanczos": FilterType.lanczos3,  # Pillow's LANCZOS is Lanczos-3 too
            "bicubic": FilterType.catmull_rom,  # Pillow's BICUBIC is the a = -0.5 cubic: Catmull-Rom
            "bilinear": FilterType.bilinear,
        }
        self.options = {
            name: ResizeOptions(resize_alg=ResizeAlg.convolution(f)) for name, f in filters.items()
        }
        try:
            release = version("cykooz-resizer")
        except PackageNotFoundError:  # imported, but without its metadata (vendored, say)
            release = "unknown version"
        self.name = f"fast_image_resize (cykooz-resizer {release}, {self.resizer.cpu_extensions.name})"

    def resize(self, im: Image.Image, size: tuple[int, int], resample: str) -> Image.Image:
        out = Image.new(im.mode, size)
        self.resizer.resize_pil(im, out, self.options[resample])
        return out


def _load_fast_resizer() -> _FastResizer | None:
    """The SIMD resizer, or None (Pillow resizes) when ``cykooz-resizer`` cannot be imported or set up.

    ``pyproject.toml`` asks for it only on the platforms its binary wheels cover (Linux x86_64,
    macOS, Windows x86-64): elsewhere a source build would need a Rust toolchain, so there it is
    absent, and its native library may also fail to load. Pillow's filters are the same kinds
    (within ~0.1 dB), only slower.
    """
    try:
        return _FastResizer()
    except (ImportError, OSError):
        return None


#: The SIMD resizer for this process, or None: Pillow's ``Image.resize`` is used.
_FAST = _load_fast_resizer()

#: Modes the fast resizer is given; anything else goes to Pillow (none reaches the resize today:
#: JPEGs are RGB or L after ``draft``, other images are converted to RGB first).
_FAST_MODES = ("RGB", "L")


def resizer_name() -> str:
    """Which code resizes in this process, with its version, for a build's report or manifest: e.g.
    ``"fast_image_resize (cykooz-resizer 4.0.1, avx2)"``, or ``"pillow 12.3.0"`` without cykooz-resizer."""
    return _FAST.name if _FAST is not None else f"pillow {PIL.__version__}"


def _resize(im: Image.Image, size: tuple[int, int], resample: str) -> Image.Image:
    if _FAST is not None and im.mode in _FAST_MODES:
        return _FAST.resize(im, size, resample)
    return im.resize(size, RESAMPLE[resample])


#: Modes a JPEG may keep its original bytes in: every decoder reads baseline RGB (YCbCr) and greyscale.
PASS_THROUGH_MODES = ("RGB", "L")


@dataclass(frozen=True)
class ImageOptions:
    """How images are checked and stored.

    resize: shorter side in pixels for resized shards (None: original size). Images already smaller
      are not enlarged.
    quality: JPEG quality of re-encoded and resized images (fixed, so builds are reproducible).
    max_pixels: decompression-bomb bound; larger images are refused (``too_large``) before decoding.
    verify: how pass-through JPEGs are checked: "header" (parse the header and require an
      end-of-image marker after the first scan; no decode; the default, see the module docstring),
      "draft" (the same, then a reduced-size decode) or "full" (the same, then a full decode).
    resample: the resize filter, antialiased when shrinking: "lanczos" (Lanczos-3, the default, the
      sharpest), "bicubic" (Catmull-Rom) or "bilinear" (the cheapest; about img2dataset's quality).
      fast_image_resize runs it when cykooz-resizer is installed, Pillow otherwise
      (:func:`resizer_name`); docs/shards.md has the figures.
    """

    resize: int | None = None
    quality: int = 95
    max_pixels: int = 100_000_000
    verify: str = "header"
    resample: str = "lanczos"

    def __post_init__(self) -> None:
        if self.verify not in ("draft", "full", "header"):
            raise OptionError(f"--verify must be draft, full or header, not {self.verify!r}")
        if self.resample not in RESAMPLE:
            raise OptionError(f"--resample must be one of {', '.join(sorted(RESAMPLE))}, not {self.resample!r}")
        if self.resize is not None and self.resize < 8:
            raise OptionError(f"--resize must be at least 8 pixels, not {self.resize}")
        if not 1 <= self.quality <= 100:
            raise OptionError(f"--jpeg-quality must be between 1 and 100, not {self.quality}")
        if self.max_pixels < 1:
            raise OptionError(f"--max-pixels must be at least 1, not {self.max_pixels}")


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
    if options.verify == "header":
        plain = _plain_header(data)
        if plain is not None:
            mode, width, height, scan = plain
            if width * height > options.max_pixels:
                raise ImageError(
                    "too_large", f"{width}x{height} pixels exceeds the bound of {options.max_pixels}"
                )
            if _target_size(width, height, options.resize) is None:
                _check_end_marker(data, scan)
                return data, {
                    "image_format": "JPEG",
                    "image_mode": mode,
                    "width": width,
                    "height": height,
                    "jpg_width": width,
                    "jpg_height": height,
                    "jpg_bytes": len(data),
                    "image_action": "kept",
                }
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns on odd EXIF etc.; the checks below decide
            im: Image.Image = Image.open(io.BytesIO(data))
            fmt, mode, (width, height) = im.format or "unknown", im.mode, im.size
            if width * height > options.max_pixels:
                raise ImageError(
                    "too_large", f"{width}x{height} pixels exceeds the bound of {options.max_pixels}"
                )
            info: dict[str, Any] = {"image_format": fmt, "image_mode": mode, "width": width, "height": height}
            odd = fmt != "JPEG" or mode not in PASS_THROUGH_MODES
            target = _target_size(width, height, options.resize)
            if fmt in ("JPEG", "MPO"):  # whatever is done next: a decoder may pass a zero-padded cut
                _check_end_marker(data, _scan_data_start(data))
            if not odd and target is None:
                _verify_jpeg(im, options.verify)
                out, action = data, "kept"
            else:
                if target is not None and fmt == "JPEG":
                    im.draft("RGB" if mode != "L" else "L", target)  # DCT scaling: decode at >= target size
                im.load()
                im = _to_rgb(im) if odd else im
                if target is not None:
                    im = _resize(im, target, options.resample)
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


#: Start-of-frame markers of the JPEGs every decoder reads: baseline, extended and progressive Huffman.
_PLAIN_SOF = frozenset((0xC0, 0xC1, 0xC2))
#: The other start-of-frame markers (lossless, hierarchical, arithmetic): Pillow decides about those.
_OTHER_SOF = frozenset(range(0xC3, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_header(data: bytes) -> tuple[str, int, int] | None:
    """``(mode, width, height)`` of a plain 8-bit greyscale or 3-component JPEG, read from its markers.

    Why: Pillow's ``Image.open`` spends as long in Python marker handling as copying the file takes;
    this walks the segment lengths up to the first scan in a tenth of that (docs/shards.md). It
    answers only for the
    common case and returns None for anything unusual (other frame types, CMYK, an MPO's MPF marker,
    a malformed or truncated header, no frame before the scan), so Pillow still decides every odd
    file and the outcome is the same as Pillow's for the files it answers for (the tests compare).
    """
    plain = _plain_header(data)
    return None if plain is None else plain[:3]


def _plain_header(data: bytes) -> tuple[str, int, int, int] | None:
    """:func:`jpeg_header`'s answer and where the first scan's entropy-coded data begins (the end of
    its start-of-scan segment), which the end-of-image rule needs: one walk for both."""
    if data[:2] != b"\xff\xd8":
        return None
    found: tuple[str, int, int] | None = None
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: the header is over
            scan = pos + 2 + ((data[pos + 2] << 8) | data[pos + 3])
            return None if found is None or scan > end else (*found, scan)
        if marker < 0xC0 or 0xD0 <= marker <= 0xD9:  # stand-alone markers have no place in a header
            return None
        length = (data[pos + 2] << 8) | data[pos + 3]
        if length < 2 or pos + 2 + length > end:
            return None
        if marker in _PLAIN_SOF:
            if found or length < 8:
                return None
            precision, components = data[pos + 4], data[pos + 9]
            height = (data[pos + 5] << 8) | data[pos + 6]
            width = (data[pos + 7] << 8) | data[pos + 8]
            if precision != 8 or components not in (1, 3) or length != 8 + 3 * components:
                return None
            if not width or not height:
                return None
            found = ("L" if components == 1 else "RGB", width, height)
        elif marker in _OTHER_SOF or (marker == 0xE2 and data[pos + 4 : pos + 8] == b"MPF\0"):
            return None
        pos += 2 + length
    return None


def _scan_data_start(data: bytes) -> int | None:
    """Where the first scan's entropy-coded data begins, found as Pillow finds it (segment by segment,
    stepping over junk between segments): for the JPEGs :func:`jpeg_header` leaves to Pillow. None
    when there is no complete start-of-scan segment."""
    pos, end = 2, len(data)
    while pos + 4 <= end:
        marker = data[pos + 1]
        if data[pos] != 0xFF or marker in (0x00, 0xFF):  # junk, or a fill byte before a marker
            pos += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD9:  # stand-alone markers have no length
            pos += 2
        else:
            pos += 2 + ((data[pos + 2] << 8) | data[pos + 3])
            if marker == 0xDA:
                return pos if pos <= end else None
    return None


def _check_end_marker(data: bytes, scan: int | None) -> None:
    """A JPEG is truncated when no end-of-image marker (FF D9) follows the start of its first scan.

    Why after the scan: FF D9 earlier may belong to a comment or an EXIF thumbnail. Why anywhere
    after it, not only at the very end: inside entropy-coded data every FF byte is stuffed (FF 00) or
    a restart marker (FF D0-D7), so FF D9 there is the marker itself, and bytes after it (zero
    padding, a downloader's junk, a second image) are not truncation: decoders stop at the marker.
    Such a file is kept as it is, its bytes unchanged, so the stored bytes stay the source's bytes
    (their sha256 is what a rebuild from a text release checks). Searching from the end finds the
    marker of a plain file at once.
    """
    if scan is None:
        raise ImageError("corrupt_image", "no complete JPEG start-of-scan segment (truncated header)")
    if data.rfind(b"\xff\xd9", scan) < 0:
        raise ImageError("corrupt_image", "no JPEG end-of-image marker after the first scan (truncated file)")


def _verify_jpeg(im: Image.Image, how: str) -> None:
    """Decode a pass-through JPEG for ``--verify draft`` or ``full`` (the end-of-image rule is checked
    first, for every mode: a decoder reads zero padding after a cut as data, and passes the file)."""
    if how == "header":
        return
    if how == "draft":
        im.draft(im.mode, (max(1, im.size[0] // 8), max(1, im.size[1] // 8)))
    im.load()


#: Pillow's 16-bit greyscale modes (little-, big- and native-endian unsigned samples).
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def _to_8_bit(im: Image.Image) -> Image.Image:
    """Greyscale of more than 8 bits as 8-bit ``L`` by the high byte (v >> 8); any other image as it is.

    Why: Pillow's ``convert`` clips these modes at 255 instead of scaling, so a 16-bit photo came out
    nearly white. The high byte (not round(v / 257), which differs by at most one level) is what
    Pillow itself keeps of 16-bit RGB(A) PNGs and TIFFs, so a picture gets the same 8-bit tones
    stored as greyscale or as colour. Mode ``I`` (32-bit integers: a 16-bit PGM, which Pillow scales
    to 0..65535, or a 32-bit TIFF) is read the same way when its values fit 16 bits; beyond that, and
    for floating-point pixels, no tone scale is known (white may be 1.0, 255 or 65535), so the image
    is refused with a reason rather than guessed at.
    """
    if im.mode == "F":
        raise ImageError(
            "unsupported_image", "floating-point pixels have no fixed tone scale to map to 8 bits"
        )
    if im.mode not in _SIXTEEN_BIT and im.mode != "I":
        return im
    samples = np.asarray(im)
    if im.mode == "I":
        low, high = int(samples.min()), int(samples.max())
        if low < 0 or high > 0xFFFF:
            raise ImageError(
                "unsupported_image",
                f"32-bit integer pixels from {low} to {high}: only 0..65535 (16 bits) map to 8 bits",
            )
    return Image.fromarray((samples >> 8).astype(np.uint8))


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB, with transparency composited on white (a transparent PNG should not turn black), and
    more than 8 bits a sample scaled down (:func:`_to_8_bit`), never clipped."""
    im = _to_8_bit(im)
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
