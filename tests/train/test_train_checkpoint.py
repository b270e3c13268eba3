"""Checkpoints round-trip: what is saved is what eval loads, for our models and open_clip's files."""

from __future__ import annotations

import pytest
import torch

from imagenet_captions.classes import wnids
from imagenet_captions.errors import UsageError
from imagenet_captions.train.checkpoint import load_for_inference, save_checkpoint
from imagenet_captions.train.models import build_model, model_config, preprocess_for, tokenizer_spec


def _payload(name: str) -> dict:
    torch.manual_seed(0)
    cfg = model_config(name)
    model = build_model(cfg)
    return {
        "kind": cfg["kind"],
        "model": cfg,
        "state_dict": model.state_dict(),
        "optimizer": None,
        "scheduler": None,
        "step": 0,
        "epoch": 0,
        "data_position": {},
        "rng": {},
        "tokenizer": tokenizer_spec(cfg),
        "preprocess": preprocess_for(cfg),
        "wnids": wnids(),
        "train_options": {},
        "data": {},
    }, model


def test_tiny_clip_round_trip(tmp_path):
    payload, model = _payload("clip-tiny")
    path = save_checkpoint(payload, tmp_path / "c.pt")
    loaded = load_for_inference(path)
    assert loaded.kind == "clip" and not loaded.model.training
    tokens = loaded.tokenizer(["a red circle", "a blue square"])
    assert tokens.shape == (2, 16) and tokens.dtype == torch.long
    images = torch.randn(2, 3, 32, 32)
    model.eval()
    want = torch.nn.functional.normalize(model.encode_image(images), dim=-1)
    assert torch.allclose(loaded.encode_image(images), want, atol=1e-6)
    assert loaded.encode_text(tokens).shape == (2, 64)
    assert loaded.wnids[0] == "n01440764" and len(loaded.wnids) == 1000
    assert loaded.preprocess["image_size"] == 32
    with pytest.raises(TypeError):
        loaded.logits(images)


def test_tiny_classifier_round_trip(tmp_path):
    payload, model = _payload("ce-tiny")
    loaded = load_for_inference(save_checkpoint(payload, tmp_path / "c.pt"))
    images = torch.randn(3, 3, 32, 32)
    model.eval()
    assert loaded.tokenizer is None
    assert torch.allclose(loaded.logits(images), model(images), atol=1e-6)
    assert loaded.logits(images).shape == (3, 1000)
    from PIL import Image

    x = loaded.transform()(Image.new("L", (50, 40), 128))
    assert x.shape == (3, 32, 32)


def test_not_a_checkpoint_is_a_usage_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError):
        load_for_inference(bad)
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(UsageError, match="open_clip"):
        load_for_inference(tmp_path / "foreign.pt")
    with pytest.raises(UsageError):
        load_for_inference(tmp_path / "missing.pt")


def test_loads_open_clip_state_dict_file(tmp_path):
    """An open_clip_train-style file ({'state_dict': 'module.'-prefixed}) loads by model name."""
    import open_clip

    model = open_clip.create_model("RN50", pretrained=None)
    sd = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save({"epoch": 1, "name": "x", "state_dict": sd}, tmp_path / "epoch_1.pt")
    loaded = load_for_inference(f"open_clip:RN50:{tmp_path / 'epoch_1.pt'}")
    assert loaded.source == "open_clip" and loaded.kind == "clip"
    assert loaded.preprocess["image_size"] == 224
    x = torch.randn(1, 3, 224, 224)
    model.eval()
    want = torch.nn.functional.normalize(model.encode_image(x), dim=-1)
    assert torch.allclose(loaded.encode_image(x), want, atol=1e-5)
    assert loaded.tokenizer(["a photo"]).shape == (1, 77)
