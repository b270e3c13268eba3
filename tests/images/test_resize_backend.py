"""The resize backends: fast_image_resize (cykooz-resizer, SIMD) when it imports, Pillow otherwise.

Both must give the same size, mode and (nearly) the same pixels for each filter, and the fallback must
really run when the fast backend is missing.
"""

import io
import sys
import threading

import numpy as np
import PIL
import pytest
from PIL import Image

from imagenet_captions.images import ImageOptions, process_image
from imagenet_captions.images import process as P
from imagenet_captions.testing.synthetic import photo_texture

pytest.importorskip("cykooz_resizer")  # a core dependency; absent only where no wheel exists


def _texture(size=(500, 375), seed=0):
    """Photo-like pixels, as the shard benchmark generates them."""
    width, height = size
    return Image.fromarray(photo_texture(np.random.default_rng(seed), height, width), "RGB")


def _jpeg(im, quality=90):
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _decoded(data):
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def _psnr(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture
def pillow_only(monkeypatch):
    """The fallback: no fast backend, as where cykooz-resizer has no wheel."""
    monkeypatch.setattr(P, "_FAST", None)


@pytest.fixture
def count_pillow_resizes(monkeypatch):
    """Modes of the images Pillow's ``Image.resize`` is called on (clear it after making test images)."""
    calls = []
    original = Image.Image.resize

    def spy(self, *args, **kwargs):
        calls.append(self.mode)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", spy)
    return calls


def test_fast_backend_is_loaded_and_named():
    assert P._FAST is not None
    name = P.resizer_name()
    assert name.startswith("fast_image_resize (cykooz-resizer ") and name.endswith(")")


def test_fallback_is_named_after_pillow(pillow_only):
    assert P.resizer_name() == f"pillow {PIL.__version__}"


def test_loader_falls_back_when_the_package_does_not_import(monkeypatch):
    monkeypatch.setitem(sys.modules, "cykooz_resizer", None)  # makes `import cykooz_resizer` fail
    assert P._load_fast_resizer() is None


@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("resample", sorted(P.RESAMPLE))
def test_fast_filter_matches_pillows_filter_of_the_same_name(mode, resample):
    """Same size and mode, ~54 dB from Pillow's same filter, and closer to it than to the other two
    (a wrong filter mapping is 38-47 dB away)."""
    src = _texture().convert(mode)
    fast = P._FAST.resize(src, (341, 256), resample)
    assert fast.size == (341, 256) and fast.mode == mode
    against = {name: _psnr(fast, src.resize((341, 256), f)) for name, f in P.RESAMPLE.items()}
    assert against[resample] > 50
    assert max(against, key=against.get) == resample


@pytest.mark.parametrize("resample", sorted(P.RESAMPLE))
def test_process_image_fast_and_fallback_agree(resample, monkeypatch, count_pillow_resizes):
    data = _jpeg(_texture())
    count_pillow_resizes.clear()
    options = ImageOptions(resize=256, resample=resample)
    fast_out, fast_info = process_image(data, options)
    assert count_pillow_resizes == []  # the fast backend did the resize
    monkeypatch.setattr(P, "_FAST", None)
    slow_out, slow_info = process_image(data, options)
    assert count_pillow_resizes == ["RGB"]  # ... and here Pillow did
    assert fast_info == {**slow_info, "jpg_bytes": fast_info["jpg_bytes"]}
    assert fast_info["image_action"] == "resized"
    assert (fast_info["jpg_width"], fast_info["jpg_height"]) == (341, 256)
    fast_im, slow_im = _decoded(fast_out), _decoded(slow_out)
    assert fast_im.size == slow_im.size == (341, 256) and fast_im.mode == slow_im.mode == "RGB"
    assert _psnr(fast_im, slow_im) > 35


@pytest.mark.parametrize("backend", ["fast", "pillow"])
def test_greyscale_stays_greyscale(backend, monkeypatch):
    if backend == "pillow":
        monkeypatch.setattr(P, "_FAST", None)
    src = _texture((300, 600)).convert("L")
    out, info = process_image(_jpeg(src), ImageOptions(resize=256))
    im = _decoded(out)
    assert im.mode == "L" and im.size == (256, 512)
    assert info["image_mode"] == "L" and info["image_action"] == "resized"
    assert _psnr(im, src.resize((256, 512), Image.Resampling.LANCZOS)) > 35


@pytest.mark.parametrize("backend", ["fast", "pillow"])
def test_draft_then_filter_on_a_large_image(backend, monkeypatch):
    """2000x1500 → draft to 1/4 (500x375) then the filter to 341x256, by either backend. The 1/4
    decode drops the finest grain, so against a LANCZOS of the full image it is ~27 dB."""
    if backend == "pillow":
        monkeypatch.setattr(P, "_FAST", None)
    src = _texture((2000, 1500), seed=2)
    out, info = process_image(_jpeg(src), ImageOptions(resize=256))
    im = _decoded(out)
    assert im.size == (341, 256) and (info["width"], info["height"]) == (2000, 1500)
    assert _psnr(im.convert("RGB"), src.resize((341, 256), Image.Resampling.LANCZOS)) > 25


@pytest.mark.parametrize(("mode", "fmt"), [("CMYK", "JPEG"), ("RGBA", "PNG"), ("P", "PNG"), ("I;16", "PNG")])
def test_odd_modes_reach_the_resize_as_rgb(mode, fmt, count_pillow_resizes):
    """Odd images are converted to RGB before the resize, so the fast backend handles them too."""
    src = _texture((400, 300)).convert("L" if mode == "I;16" else "RGB").convert(mode)
    buf = io.BytesIO()
    src.save(buf, fmt)
    count_pillow_resizes.clear()
    out, info = process_image(buf.getvalue(), ImageOptions(resize=256))
    im = _decoded(out)
    assert im.mode == "RGB" and im.size == (341, 256) and info["image_mode"] == mode
    assert count_pillow_resizes == []


def test_modes_the_fast_backend_does_not_take_go_to_pillow(count_pillow_resizes):
    im = _texture((100, 80)).convert("RGBA")
    count_pillow_resizes.clear()
    out = P._resize(im, (50, 40), "lanczos")
    assert out.size == (50, 40) and out.mode == "RGBA" and count_pillow_resizes[:1] == ["RGBA"]


def test_one_resizer_is_safe_to_share_between_threads():
    src = _texture((800, 600), seed=3)
    want = P._FAST.resize(src, (341, 256), "lanczos").tobytes()
    got, errors = [], []

    def work():
        try:
            for _ in range(10):
                got.append(P._FAST.resize(src, (341, 256), "lanczos").tobytes())
        except Exception as e:  # noqa: BLE001 - any failure in a thread is the test's failure
            errors.append(repr(e))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(got) == 40 and all(g == want for g in got)
