"""Eval's CUDA paths: nvJPEG's stream in the batched decode, fp32 heads under bf16, the benchmark.

Skipped without a GPU; ``benchmarks/gpu_session.sh`` runs them on the device machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from imagenet_captions.classes import wnids
from imagenet_captions.eval.heads import Head
from imagenet_captions.eval.inference import GpuPreprocess
from imagenet_captions.testing.eval_bench import measure_inference, write_test_jpegs
from imagenet_captions.testing.synthetic import photo_like_jpeg
from imagenet_captions.train.checkpoint import LoadedModel
from imagenet_captions.train.models import build_model, model_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
PRE = {"image_size": 224, "resize": 256, "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bilinear"}


def test_gpu_decode_never_writes_memory_the_stream_still_reads() -> None:
    """pytorch/vision#9606: batch k+1's decode must not overwrite blocks batch k's kernels read."""
    blobs = [torch.frombuffer(bytearray(photo_like_jpeg(i)), dtype=torch.uint8) for i in range(8)]
    gpu = GpuPreprocess(PRE, torch.device("cuda"))
    nbytes = 3 * 500 * 375  # one decoded image: the blocks the decoder is likely to be handed
    wrong = 0
    for _ in range(20):
        blocks = [torch.full((nbytes,), k + 1, dtype=torch.uint8, device="cuda") for k in range(8)]
        torch.cuda.synchronize()
        torch.cuda._sleep(200_000_000)  # the stream stays busy after this returns
        sums = [b.sum(dtype=torch.int64) for b in blocks]  # queued behind it
        del blocks  # free while the sums are queued: the allocator may reuse them at once
        kept, images = gpu(blobs)
        torch.cuda.synchronize()
        wrong += sum(int(s.item()) != (k + 1) * nbytes for k, s in enumerate(sums))
        assert kept == list(range(8)) and images.shape == (8, 3, 224, 224)
    assert wrong == 0, f"{wrong} queued reads saw memory the decoder wrote"
    assert gpu.cpu_fallback == 0 and gpu.unreadable == 0


def test_heads_are_fp32_under_bf16_autocast_on_the_gpu() -> None:
    torch.manual_seed(0)
    model = build_model(model_config("ce-tiny")).eval().cuda()
    loaded = LoadedModel(
        "classifier", model, None, {}, wnids(), {}, torch.device("cuda"), "imagenet-captions"
    )
    images = torch.randn(16, 3, 32, 32, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = Head(loaded)(images)
    assert logits.dtype == torch.float32 and logits.shape == (16, 1000)


def test_measure_inference_on_the_gpu(tmp_path: Path) -> None:
    write_test_jpegs(tmp_path, 64, size=(160, 120), unique=8)
    r = measure_inference(str(tmp_path), "cuda", 8, 1.0, model_name="resnet18", image_size=64, workers=2)
    assert r["decode"].startswith("gpu") and r["cpu_decode_fallback"] == 0 and r["images_per_s"] > 0
