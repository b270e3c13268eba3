"""The trainer's CUDA paths: nvJPEG's stream, the device decode in a run, cuDNN/TF32 settings.

Most tests here need a GPU and are skipped without one; ``benchmarks/gpu_session.sh`` runs them on
the device machine. The settings test runs anywhere (the switches exist without a GPU).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from imagenet_captions.testing.synthetic import photo_like_jpeg
from imagenet_captions.train.augment import Augment
from imagenet_captions.train.device_decode import device_decode_crop
from imagenet_captions.train.step import fast_cuda_settings

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def cuda_switches():
    """The process-wide switches, put back after the test."""
    saved = (
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
    )
    yield
    (
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
    ) = saved


def test_fast_cuda_settings_are_open_clips(cuda_switches) -> None:
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False
    fast_cuda_settings(tf32=False)  # eval's: autotuning, fp32 products left exact
    assert torch.backends.cudnn.benchmark and not torch.backends.cuda.matmul.allow_tf32
    fast_cuda_settings()  # the trainer's, as open_clip_train.main sets them
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32


def freed_while_queued(nbytes: int, count: int = 8) -> tuple[list[torch.Tensor], list[int]]:
    """Blocks of ``nbytes`` filled with known values, summed by kernels queued behind a long one,
    then freed while those sums are still queued: the allocator may hand the blocks out again.

    Returns (the pending sums, what they must be). A decoder that writes into a reused block before
    the queued sums run makes a sum wrong.
    """
    blocks = [torch.full((nbytes,), k + 1, dtype=torch.uint8, device="cuda") for k in range(count)]
    torch.cuda.synchronize()
    torch.cuda._sleep(200_000_000)  # keeps the stream busy long after this returns
    sums = [b.sum(dtype=torch.int64) for b in blocks]
    del blocks
    return sums, [(k + 1) * nbytes for k in range(count)]


def jpeg_batch(n: int, size: tuple[int, int] = (500, 375)) -> list[torch.Tensor]:
    return [torch.frombuffer(bytearray(photo_like_jpeg(i, size)), dtype=torch.uint8) for i in range(n)]


@needs_cuda
def test_device_decode_never_writes_memory_the_stream_still_reads() -> None:
    """pytorch/vision#9606: nvJPEG's batched decode must not overwrite blocks queued kernels read."""
    jpgs = jpeg_batch(8)
    device = torch.device("cuda")
    wrong = 0
    for it in range(20):
        sums, expected = freed_while_queued(3 * 500 * 375)
        device_decode_crop(jpgs, Augment(224), it, device)
        torch.cuda.synchronize()
        wrong += sum(int(s.item()) != e for s, e in zip(sums, expected, strict=True))
    assert wrong == 0, f"{wrong} queued reads saw memory the decoder wrote"


@needs_cuda
def test_device_decode_matches_pillow_on_a_whole_image_crop() -> None:
    """nvJPEG and Pillow agree, to within decoder rounding, on a crop that is the whole image."""
    import numpy as np
    from PIL import Image

    jpgs = jpeg_batch(4, (64, 48))
    aug = Augment(64, scale=(1.0, 1.0), ratio=(4 / 3, 4 / 3))  # the whole 64x48 image, resized to 64x64
    out, fallbacks, corrupt = device_decode_crop(jpgs, aug, 0, torch.device("cuda"))
    assert out.shape == (4, 3, 64, 64) and fallbacks == 0 and corrupt == 0
    for i, data in enumerate(jpgs):
        ref = Image.open(io.BytesIO(data.numpy().tobytes())).convert("RGB")
        ref = np.asarray(ref.resize((64, 64), Image.BILINEAR), dtype=np.float32)
        got = out[i].permute(1, 2, 0).cpu().numpy()
        assert np.abs(got - ref).mean() < 8.0  # grey levels: decoders and resizers differ a little


@needs_cuda
def test_a_gpu_run_decodes_on_the_device_with_open_clips_settings(tmp_path: Path, cuda_switches) -> None:
    from trainshards import make_shards

    from imagenet_captions import cli

    shards = make_shards(tmp_path / "shapes", n=128, per_shard=64)
    out = tmp_path / "run"
    torch.backends.cudnn.benchmark = False
    rc = cli.main(
        ["train", "--shards", str(shards), "--out", str(out), "--model", "ce-tiny", "--steps", "4",
         "--batch-size", "16", "--log-every", "2", "--device", "cuda", "--decode", "device", "--workers", "2"]
    )  # fmt: skip
    assert rc == 0
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["data_device_decoded"] == 4 * 16 and rows[-1]["data_cpu_fallback"] == 0
    assert torch.backends.cudnn.benchmark and torch.backends.cuda.matmul.allow_tf32
