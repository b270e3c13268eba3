"""The inference benchmark in its tiny CPU mode (the real number needs a GPU: see docs/eval.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagenet_captions.errors import UsageError
from imagenet_captions.testing.eval_bench import measure_inference, write_test_jpegs


def test_write_test_jpegs_are_imagenet_sized(tmp_path: Path) -> None:
    from PIL import Image

    paths = write_test_jpegs(tmp_path, 3)
    assert len(paths) == 3
    with Image.open(paths[0]) as im:
        assert im.size == (500, 375) and im.format == "JPEG"
    assert paths[0].stat().st_size > 30_000  # photo-like entropy, not a flat colour


def test_measure_inference_tiny_cpu_mode(tmp_path: Path) -> None:
    write_test_jpegs(tmp_path, 8, size=(80, 60))
    r = measure_inference(
        str(tmp_path), "cpu", batch_size=2, seconds=0.3, model_name="resnet18", image_size=32, workers=0
    )
    assert r["images"] >= 2 and r["images"] % 2 == 0
    assert (
        r["images_per_s"] > 0
        and r["model_only_images_per_s"] > 0
        and r["decode_preprocess_only_images_per_s"] > 0
    )
    assert r["decode"].startswith("cpu") and r["files"] == 8 and r["image_size"] == 32
    assert r["batches_per_pass"] == 4


def test_measure_inference_refuses_a_folder_of_too_few_batches(tmp_path: Path) -> None:
    """One batch per pass (the bench once had 512 files for batches of 512) never overlaps its stages."""
    write_test_jpegs(tmp_path, 6, size=(80, 60))
    with pytest.raises(UsageError, match="fewer than 4 batches of 2"):
        measure_inference(str(tmp_path), "cpu", 2, 0.1, model_name="resnet18", image_size=32, workers=0)


def test_measure_inference_needs_jpegs(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no JPEGs"):
        measure_inference(str(tmp_path), "cpu", 2, 0.1)
