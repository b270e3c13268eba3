"""The shard loader: determinism, resume positions, decode paths, and counted bad samples."""

from __future__ import annotations

import dataclasses
import io
import json
import random
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image
from trainshards import make_shards

from imagenet_captions.errors import UsageError
from imagenet_captions.testing.synthetic import jpeg_bytes
from imagenet_captions.train.data import (
    Augment,
    LoaderConfig,
    ShardLoader,
    StepsDataset,
    decode_crop_pil,
    device_decode_crop,
    resolve_shards,
    rrc_params,
)

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return make_shards(tmp_path_factory.mktemp("shapes"), n=192, per_shard=48)


def _cfg(**kw) -> LoaderConfig:
    base = dict(
        batch_size=16, augment=Augment(32), kind="classifier", tokenizer=None, workers=2, shuffle_buffer=40
    )
    base.update(kw)
    return LoaderConfig(**base)


def _loader(shards: Path, **kw) -> ShardLoader:
    return ShardLoader(resolve_shards(str(shards)), _cfg(**kw), [0.5] * 3, [0.25] * 3, CPU)


def test_resolve_shards_dir_pattern_and_errors(shards, tmp_path):
    spec = resolve_shards(str(shards.parent))  # <out> finds <out>/shards
    assert len(spec.urls) == 4 and spec.num_samples == 192
    spec = resolve_shards(str(shards / "{00000..00001}.tar"))
    assert [Path(u).name for u in spec.urls] == ["00000.tar", "00001.tar"] and spec.num_samples == 96
    assert resolve_shards(str(shards), num_samples=50).num_samples == 50
    with pytest.raises(UsageError, match="not found"):
        resolve_shards(str(shards / "{00000..00009}.tar"))
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "a.tar").write_bytes((shards / "00000.tar").read_bytes())
    with pytest.raises(UsageError, match="sizes.json"):
        resolve_shards(str(bare))
    assert resolve_shards(str(bare), num_samples=48).num_samples == 48


def test_workers_and_in_process_give_identical_batches(shards):
    """Worker processes and an in-process iteration of the same slots make the same batches."""
    spec = resolve_shards(str(shards))
    cfg = _cfg()
    in_process = list(StepsDataset(spec, cfg, 0, 12, steps_per_epoch=12, rank=0, world=1))
    loader = _loader(shards)
    with_workers = list(loader.epoch(0))
    assert len(in_process) == len(with_workers) == 12
    for a, b in zip(in_process, with_workers, strict=True):
        assert a["keys"] == b["keys"]
    # An epoch is a fixed number of samples (12 x 16 = all 192) from streams that cycle over their
    # shards; the shuffle buffer spans a cycle's end, so most but not all samples appear exactly once.
    keys = [k for b in with_workers for k in b["keys"]]
    assert len(keys) == 192 and len(set(keys)) >= 0.8 * 192
    assert [k for b in loader.epoch(1) for k in b["keys"]] != keys


def test_start_step_resumes_the_same_batches(shards):
    loader = _loader(shards)
    full = list(loader.epoch(0))
    tail = list(loader.epoch(0, start_step=5))
    assert [b["step"] for b in tail] == list(range(5, 12))
    for a, b in zip(full[5:], tail, strict=True):
        assert a["keys"] == b["keys"] and torch.equal(a["images"], b["images"])


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_workers_run_across_epochs_and_resume_anywhere(shards):
    """12 steps per epoch over 5 workers: the worker-to-slot map shifts each epoch, and a run from
    any global step gives the same batches as the whole run, epoch by epoch."""
    loader = _loader(shards, workers=5)
    whole = list(loader.steps(0, 30))
    assert [(b["epoch"], b["step"]) for b in whole] == [divmod(g, 12) for g in range(30)]
    by_epoch = list(loader.epoch(0)) + list(loader.epoch(1)) + list(loader.epoch(2))[:6]
    assert [b["keys"] for b in whole] == [b["keys"] for b in by_epoch]
    resumed = list(loader.steps(17, 30))
    assert [b["keys"] for b in resumed] == [b["keys"] for b in whole[17:]]
    spec = resolve_shards(str(shards))
    in_process = list(StepsDataset(spec, _cfg(workers=5), 0, 30, 12, rank=0, world=1))
    assert [b["keys"] for b in in_process] == [b["keys"] for b in whole]


def test_ranks_split_the_data(shards):
    spec = resolve_shards(str(shards))
    cfg = _cfg(workers=1, shuffle_buffer=0)  # no buffer across the pass end: one pass exactly
    r0 = [k for b in StepsDataset(spec, cfg, 0, 6, 6, rank=0, world=2) for k in b["keys"]]
    r1 = [k for b in StepsDataset(spec, cfg, 0, 6, 6, rank=1, world=2) for k in b["keys"]]
    assert len(r0) == len(r1) == 96 and not set(r0) & set(r1)


def test_device_decode_matches_cpu_decode(shards):
    """The batched decode path (nvjpeg on a GPU; the same code on the CPU here) crops like Pillow."""
    cpu = list(_loader(shards, workers=0, decode="cpu").epoch(0))[:2]
    dev_loader = _loader(shards, workers=0, decode="device")
    dev = list(dev_loader.epoch(0))[:2]
    for a, b in zip(cpu, dev, strict=True):
        assert a["keys"] == b["keys"] and a["images"].shape == b["images"].shape == (16, 3, 32, 32)
        assert (a["images"] - b["images"]).abs().mean() < 0.05  # normalised units: nearly equal pixels
    assert dev_loader.stats["device_decoded"] > 0 and dev_loader.stats["cpu_fallback"] == 0


def test_device_decode_falls_back_to_pillow_and_counts(tmp_path):
    rgb = Image.new("RGB", (40, 30), (200, 10, 10))
    buf = io.BytesIO()
    rgb.convert("CMYK").save(buf, "JPEG")  # CMYK: not an RGB/grey JPEG for the batch decoder
    jpgs = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in (jpeg_bytes(rgb), buf.getvalue())]
    out, fallbacks, corrupt = device_decode_crop(jpgs, Augment(16), seed=1, device=CPU)
    assert out.shape == (2, 3, 16, 16) and corrupt == 0
    assert fallbacks <= 1  # torchvision may decode CMYK itself; if not, Pillow did and it was counted
    assert out[1, 0].mean() > 150 and out[1, 1].mean() < 80  # still red either way


def test_greyscale_decodes_to_rgb():
    grey = jpeg_bytes(Image.new("L", (50, 40), 77))
    arr = decode_crop_pil(grey, Augment(24), random.Random(0))
    assert arr.shape == (24, 24, 3)
    out, _, _ = device_decode_crop(
        [torch.frombuffer(bytearray(grey), dtype=torch.uint8)], Augment(24), 0, CPU
    )
    assert out.shape == (1, 3, 24, 24)


def test_rrc_params_stay_inside_the_image():
    rng = random.Random(3)
    for h, w in [(375, 500), (40, 48), (1000, 20)]:
        for _ in range(200):
            top, left, ch, cw = rrc_params(h, w, (0.08, 1.0), (3 / 4, 4 / 3), rng)
            assert top >= 0 and top + ch <= h and left >= 0 and left + cw <= w and ch > 0 and cw > 0


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_bad_samples_are_counted_not_dropped_silently(tmp_path):
    d = tmp_path / "shards"
    d.mkdir()
    good = jpeg_bytes(Image.new("RGB", (40, 40), (0, 200, 0)))
    with tarfile.open(d / "00000.tar", "w") as tar:
        for i in range(20):
            key = f"n01440764_{i}"
            if i != 3:
                _add(tar, f"{key}.jpg", b"not a jpeg" if i == 5 else good)
            if i != 7:
                _add(tar, f"{key}.txt", b"a green square")
            _add(tar, f"{key}.cls", b"1001" if i == 9 else b"0")
    (d / "sizes.json").write_text(json.dumps({"00000.tar": 20}))
    spec = resolve_shards(str(d))
    for kind, want in [
        ("classifier", {"missing_jpg": 1, "corrupt_image": 1, "bad_label": 1}),
        ("clip", {"missing_jpg": 1, "corrupt_image": 1, "missing_txt": 1}),
    ]:
        cfg = _cfg(
            kind=kind,
            batch_size=16,
            workers=0,
            shuffle_buffer=0,
            tokenizer=None
            if kind == "classifier"
            else {"type": "open_clip", "name": "RN50", "context_length": 8},
        )
        loader = ShardLoader(spec, cfg, [0.5] * 3, [0.25] * 3, CPU)
        batches = list(loader.epoch(0))
        assert len(batches) == 1 and len(batches[0]["keys"]) == 16
        assert {k: v for k, v in loader.stats.items() if k not in ("cpu_decoded",)} == want
        assert not {"n01440764_3", "n01440764_5"} & set(batches[0]["keys"])


def test_resampled_streams_are_deterministic(shards):
    a = [b["keys"] for b in _loader(shards, resampled=True).epoch(0)]
    b = [b["keys"] for b in _loader(shards, resampled=True).epoch(0)]
    assert a == b and len(a) == 12
    assert dataclasses.replace(_cfg(), resampled=True).resampled
