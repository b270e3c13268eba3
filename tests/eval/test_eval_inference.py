"""Inference end to end on generated trees: decode, preprocess, subset scoring, the eval command.

The model here is a "colour classifier" whose logits depend only on an image's mean colour, so the
right answer for every generated image is known in advance and the accuracies are exact.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from imagenet_captions.classes import wnid_to_label, wnids
from imagenet_captions.cli import main
from imagenet_captions.eval import subsets
from imagenet_captions.eval.evaluate import evaluate
from imagenet_captions.eval.inference import GpuPreprocess, _collate, _Files, cpu_transform, prepare_batch
from imagenet_captions.train.checkpoint import LoadedModel, save_checkpoint
from imagenet_captions.train.models import build_model, model_config, preprocess_for

W = wnids()
LABEL = wnid_to_label()
PRE = {
    "image_size": 8,
    "resize": 8,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.25, 0.25, 0.25],
    "interpolation": "bilinear",
}


class ColourNet(torch.nn.Module):
    """Logit of class k = -10 * |mean colour - colour_k|^2 for the classes given; -1000 elsewhere."""

    def __init__(self, colours: dict[int, tuple[int, int, int]]) -> None:
        super().__init__()
        self.register_buffer("idx", torch.tensor(list(colours)))
        self.register_buffer("colours", torch.tensor(list(colours.values()), dtype=torch.float32) / 255)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb = (x.float() * 0.25 + 0.5).mean(dim=(2, 3))
        d = ((rgb[:, None, :] - self.colours[None]) ** 2).sum(-1)
        out = torch.full((x.shape[0], 1000), -1000.0, device=x.device)
        out[:, self.idx] = -10 * d
        return out


R0 = subsets.imagenet_r_wnids()[0]
NON_R = next(
    w for w in W if w not in set(subsets.imagenet_r_wnids()) and w not in set(subsets.imagenet_a_wnids())
)
RED, DARK_RED, YELLOW, BLUE, GREEN = (250, 0, 0), (200, 0, 0), (250, 250, 0), (0, 0, 250), (0, 200, 0)
BANANA, ANALOG, DIGITAL = 954, 409, 530
NON_OBJECTNET = next(
    i
    for i in range(1000)
    if i not in {*subsets.objectnet_imagenet_indices(), *subsets.imagenet_r_indices(), LABEL[NON_R]}
)
COLOURS = {  # six distinct classes
    LABEL[NON_R]: RED,  # red images are NON_R over all 1000 classes ...
    LABEL[R0]: DARK_RED,  # ... but R0 among ImageNet-R's 200 classes
    NON_OBJECTNET: YELLOW,  # yellow images are NON_OBJECTNET over 1000 ...
    BANANA: (230, 230, 0),  # ... but banana among ObjectNet's 125
    DIGITAL: BLUE,
    ANALOG: GREEN,
}


assert len(COLOURS) == 6


def _model(device: str = "cpu") -> LoadedModel:
    net = ColourNet(COLOURS).to(device)
    return LoadedModel("classifier", net, None, PRE, W, {}, torch.device(device), "test")


@pytest.fixture
def data_root(tmp_path: Path, image_writer) -> Path:
    root = tmp_path / "data"
    # ImageNet val, folder per wnid: 2 red R0 images (wrong over 1000, right over R's 200), 1 red NON_R (right).
    image_writer(root / "imagenet/val" / R0 / "a.JPEG", RED)
    image_writer(root / "imagenet/val" / R0 / "b.JPEG", RED)
    image_writer(root / "imagenet/val" / NON_R / "c.JPEG", RED)
    # ImageNet-R: the same two R0 images.
    image_writer(root / "imagenet-r" / R0 / "a.jpg", RED)
    image_writer(root / "imagenet-r" / R0 / "b.jpg", BLUE)  # blue -> digital clock, not in R: still R0
    # ObjectNet: yellow banana (right only over the 125), a blue alarm clock (digital: right, in the group),
    # a green-bordered yellow banana (the 2-px border must be cropped), and a green banana (wrong).
    on = root / "objectnet-1.0/images"
    image_writer(on / "banana" / "1.png", YELLOW, size=(12, 12))
    image_writer(on / "alarm_clock" / "2.png", BLUE, size=(12, 12))
    image_writer(on / "banana" / "3.png", YELLOW, size=(12, 12), border=GREEN)
    image_writer(on / "banana" / "4.png", GREEN, size=(12, 12))
    image_writer(on / "air_freshener" / "5.png", GREEN, size=(12, 12))  # not scored, counted
    return root


def test_evaluate_scores_each_set_with_its_class_subset(data_root: Path) -> None:
    result = evaluate(_model(), data_root, batch_size=2, workers=0)
    assert result["imagenet"] == pytest.approx(1 / 3)
    assert result["imagenet@imagenet-r"] == pytest.approx(
        1.0
    )  # only R0's two images, scored over R's classes
    assert result["imagenet-r"] == pytest.approx(1.0)
    assert result["objectnet"] == pytest.approx(3 / 4)
    d = result["details"]
    assert d["datasets"]["objectnet"]["skipped"] == {"objectnet_class_not_in_imagenet": 1}
    assert d["datasets"]["imagenet@imagenet-r"]["total"] == 2
    assert (
        d["datasets"]["imagenet@imagenet-a"]["total"] == 0
        and result["imagenet@imagenet-a"] != result["imagenet@imagenet-a"]
    )  # NaN: no image of A's classes
    assert set(d["not_found"]) == {"imagenet-v2", "imagenet-sketch", "imagenet-a"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run on the GPU machine)")
def test_cuda_path_decodes_on_the_gpu_and_gives_the_same_accuracies(data_root: Path) -> None:
    cpu = evaluate(_model("cpu"), data_root, batch_size=2, workers=0)
    gpu = evaluate(_model("cuda"), data_root, batch_size=2, workers=2)
    for key in ("imagenet", "imagenet@imagenet-r", "imagenet-r", "objectnet"):
        assert gpu[key] == pytest.approx(cpu[key]), key
    d = gpu["details"]["datasets"]
    assert d["imagenet"]["decode"] == "gpu" and d["imagenet"]["cpu_decode_fallback"] == 0
    assert d["objectnet"]["cpu_decode_fallback"] == 4  # ObjectNet's PNGs are decoded on the CPU, counted


def test_objectnet_border_crop_changes_the_answer(tmp_path: Path, image_writer) -> None:
    """Without the 2-px crop the green border pulls the mean colour away from yellow."""
    p = image_writer(tmp_path / "x.png", YELLOW, size=(12, 12), border=GREEN)
    model = ColourNet(COLOURS)
    with_crop = model(cpu_transform(PRE, border=2)(p.read_bytes())[None]).argmax().item()
    without = model(cpu_transform(PRE, border=0)(p.read_bytes())[None]).argmax().item()
    assert with_crop == NON_OBJECTNET and without != NON_OBJECTNET


def test_tensor_decode_path_matches_pil_and_counts_fallbacks(tmp_path: Path, image_writer) -> None:
    """GpuPreprocess is the CUDA path; on the CPU device it runs the same code (batched decode_jpeg)."""
    pre = {"image_size": 16, "resize": 18, "mean": [0.5] * 3, "std": [0.25] * 3, "interpolation": "bilinear"}
    jpg = image_writer(tmp_path / "a.jpg", (10, 120, 240), size=(40, 30))
    png = image_writer(tmp_path / "b.png", (240, 120, 10), size=(30, 40))
    grey = tmp_path / "c.jpg"
    from PIL import Image

    Image.new("L", (20, 20), 90).save(grey, "JPEG")
    bad = tmp_path / "d.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    blobs = [torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8) for p in (jpg, png, grey, bad)]
    gpu = GpuPreprocess(pre, torch.device("cpu"))
    kept, batch = gpu(blobs)
    assert kept == [0, 1, 2] and batch.shape == (3, 3, 16, 16)
    assert (
        gpu.cpu_fallback == 2 and gpu.unreadable == 1
    )  # the PNG and the broken file; the broken one is lost
    ref = torch.stack([cpu_transform(pre)(p.read_bytes()) for p in (jpg, png, grey)])
    assert (batch - ref).abs().max() < 0.1

    # Through the loader: JPEG bytes packed into one tensor, the PNG decoded by the worker, the
    # broken file unreadable; order and values are kept.
    files = _Files([str(p) for p in (jpg, png, grey, bad)], cpu_transform(pre), gpu_jpeg=True)
    packed = _collate([files[i] for i in range(4)])
    assert packed["blob_pos"] == [0, 2, 3] and packed["image_pos"] == [1] and packed["blobs"].dim() == 1
    gpu2 = GpuPreprocess(pre, torch.device("cpu"))
    kept2, batch2 = prepare_batch(packed, gpu2)
    assert kept2 == [0, 1, 2] and (batch2 - ref).abs().max() < 0.1
    assert gpu2.cpu_fallback == 2 and gpu2.unreadable == 1


def test_eval_command_writes_the_accuracies_json(tmp_path: Path, image_writer) -> None:
    root = tmp_path / "data"
    for k, wnid in enumerate(W[:3]):
        image_writer(root / "imagenet/val" / wnid / f"{k}.JPEG", (k * 80, 40, 200))
        image_writer(
            root / "imagenetv2-matched-frequency-format-val" / str(k) / f"{k}.jpeg", (k * 80, 40, 200)
        )
        image_writer(root / "imagenet-sketch/sketch" / wnid / f"{k}.JPEG", (k * 80, 40, 200))
    for wnid in subsets.imagenet_a_wnids()[:2]:
        image_writer(root / "imagenet-a" / wnid / "x.jpg")
    cfg = model_config("ce-tiny")
    model = build_model(cfg)
    ckpt = save_checkpoint(
        {
            "kind": "classifier",
            "model": cfg,
            "state_dict": model.state_dict(),
            "tokenizer": None,
            "preprocess": preprocess_for(cfg),
            "wnids": W,
        },
        tmp_path / "ce.pt",
    )
    out = tmp_path / "acc.json"
    rc = main(
        ["eval", "--checkpoint", str(ckpt), "--data-root", str(root), "--out", str(out), "--workers", "0"]
    )
    assert rc == 0
    acc = json.loads(out.read_text())
    for key in ("imagenet", "imagenet-v2", "imagenet-sketch", "imagenet-a"):
        assert 0.0 <= acc[key] <= 1.0
    assert acc["imagenet@imagenet-a"] is None  # none of the 3 val classes is an ImageNet-A class
    assert acc["details"]["datasets"]["imagenet"]["total"] == 3
    assert "imagenet-r" not in acc and set(acc["details"]["not_found"]) == {"imagenet-r", "objectnet"}
    # A dataset asked for by name that is not there is a usage error (exit 2), not a silent skip.
    rc = main(
        [
            "eval",
            "--checkpoint",
            str(ckpt),
            "--data-root",
            str(root),
            "--datasets",
            "objectnet",
            "--out",
            str(out),
        ]
    )
    assert rc == 2


def test_same_size_images_are_resized_together_in_order(tmp_path: Path, image_writer) -> None:
    pre = {"image_size": 8, "resize": 8, "mean": [0.0] * 3, "std": [1 / 255] * 3, "interpolation": "bilinear"}
    specs = [
        ((250, 0, 0), (40, 30)),
        ((0, 250, 0), (30, 40)),
        ((0, 0, 250), (40, 30)),
        ((250, 250, 0), (30, 40)),
    ]
    blobs = [
        torch.frombuffer(
            bytearray(image_writer(tmp_path / f"{k}.jpg", c, size=s).read_bytes()), dtype=torch.uint8
        )
        for k, (c, s) in enumerate(specs)
    ]
    kept, batch = GpuPreprocess(pre, torch.device("cpu"))(blobs)
    assert kept == [0, 1, 2, 3]
    means = batch.mean(dim=(2, 3))  # ~ the RGB colour, since std = 1/255 and mean = 0
    for k, (colour, _) in enumerate(specs):
        assert torch.allclose(means[k], torch.tensor(colour, dtype=torch.float32), atol=6), k
