"""The zero-shot head on a tiny CLIP, the classifier head, and the class-subset rules."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from imagenet_captions.classes import wnids
from imagenet_captions.eval import subsets
from imagenet_captions.eval.heads import Head, classnames_and_templates, predict, zero_shot_weights
from imagenet_captions.eval.inference import Scorer
from imagenet_captions.train.checkpoint import LoadedModel
from imagenet_captions.train.models import (
    build_model,
    make_tokenizer,
    model_config,
    preprocess_for,
    tokenizer_spec,
)


@pytest.fixture(scope="module")
def tiny_clip() -> LoadedModel:
    torch.manual_seed(0)
    cfg = model_config("clip-tiny")
    return LoadedModel(
        kind="clip",
        model=build_model(cfg).eval(),
        tokenizer=make_tokenizer(tokenizer_spec(cfg)),
        preprocess=preprocess_for(cfg),
        wnids=wnids(),
        config=cfg,
        device=torch.device("cpu"),
        source="imagenet-captions",
    )


def test_classnames_and_templates_are_the_1000_by_80() -> None:
    names, templates = classnames_and_templates()
    assert len(names) == 1000 and len(templates) == 80
    assert names[0] == "tench" and all("{c}" in t for t in templates)


def test_zero_shot_weights_average_normalised_templates_per_class(tiny_clip: LoadedModel) -> None:
    names, templates = classnames_and_templates()
    names, templates = names[:5], templates[:7]
    w = zero_shot_weights(tiny_clip.encode_text, tiny_clip.tokenizer, names, templates, classes_per_batch=2)
    assert w.shape == (5, 64)
    assert torch.allclose(w.norm(dim=1), torch.ones(5), atol=1e-5)
    for k in (0, 3, 4):  # classes from different batches
        emb = F.normalize(
            tiny_clip.encode_text(tiny_clip.tokenizer([t.format(c=names[k]) for t in templates])), dim=-1
        )
        expected = F.normalize(emb.mean(dim=0), dim=0)
        assert torch.allclose(w[k], expected, atol=1e-5)
    # The templates matter: one template gives different weights than seven.
    w1 = zero_shot_weights(tiny_clip.encode_text, tiny_clip.tokenizer, names, templates[:1])
    assert not torch.allclose(w, w1, atol=1e-3)


def test_zero_shot_weights_match_open_clips_own_builder(tiny_clip: LoadedModel) -> None:
    from open_clip.zero_shot_classifier import build_zero_shot_classifier

    names, templates = classnames_and_templates()
    names, templates = names[10:17], templates[:5]
    ours = zero_shot_weights(
        tiny_clip.encode_text, tiny_clip.tokenizer, names, templates, classes_per_batch=3
    )
    theirs = build_zero_shot_classifier(
        tiny_clip.model, tiny_clip.tokenizer, names, [lambda c, t=t: t.format(c=c) for t in templates], 4
    )
    assert torch.allclose(ours, theirs.T, atol=1e-5)


def test_clip_head_scores_images_against_the_class_embeddings(tiny_clip: LoadedModel) -> None:
    head = Head(tiny_clip, templates=["a photo of a {c}."])
    images = torch.randn(3, 3, 32, 32)
    logits = head(images)
    assert logits.shape == (3, 1000)
    expected = 100 * tiny_clip.encode_image(images) @ head.weights.T
    assert torch.allclose(logits, expected, atol=1e-4)


def test_classifier_head_maps_a_smaller_label_space_to_1000_columns() -> None:
    all_w = wnids()
    kept = [w for i, w in enumerate(all_w) if i != 850]  # e.g. teddy bear has no captions
    model = torch.nn.Linear(4, len(kept))
    loaded = LoadedModel("classifier", model, None, {}, kept, {}, torch.device("cpu"), "imagenet-captions")
    head = Head(loaded)
    x = torch.randn(6, 4)
    logits = head(x)
    assert logits.shape == (6, 1000)
    assert torch.isinf(logits[:, 850]).all()
    assert torch.equal(logits[:, 851], model(x)[:, 850].detach())  # kept[850] is wnid 851
    assert (predict(logits, None) != 850).all()
    same = Head(dataclasses.replace(loaded, model=torch.nn.Linear(4, 1000), wnids=all_w))
    assert same.columns is None


def test_predict_restricts_the_argmax_to_the_class_sublist() -> None:
    r = subsets.imagenet_r_indices()
    outside = next(i for i in range(1000) if i not in set(r))
    logits = torch.zeros(2, 1000)
    logits[:, outside] = 10.0
    logits[0, r[5]] = 5.0
    logits[1, r[7]] = 6.0
    assert predict(logits, None).tolist() == [outside, outside]
    assert predict(logits, r).tolist() == [r[5], r[7]]


def test_objectnet_subset_argmax_equals_max_over_each_class_imagenet_logits() -> None:
    """The testbed's rule (argmax over the 125, right if in the group) is the max-pool rule."""
    torch.manual_seed(1)
    groups = list(subsets.objectnet_folder_to_imagenet().values())
    logits = torch.randn(500, 1000)
    pred = predict(logits, subsets.objectnet_imagenet_indices())
    pooled = torch.stack([logits[:, list(g)].max(dim=1).values for g in groups], dim=1)
    best_group = pooled.argmax(dim=1)
    for p, g in zip(pred.tolist(), best_group.tolist(), strict=True):
        assert p in groups[g]


def test_scorer_counts_group_targets_and_class_filters() -> None:
    logits = torch.zeros(3, 1000)
    logits[0, 409] = 1.0  # analog clock for an alarm-clock image (group 409, 530): right
    logits[1, 954] = 1.0  # banana for an alarm clock: wrong
    logits[2, 1] = 1.0  # image of class 1, not in the filter: not scored
    s = Scorer("objectnet", None, frozenset({409, 530, 954}))
    s.update(logits, [(409, 530), (409, 530), (1,)])
    assert (s.correct, s.total, s.top1) == (1, 2, 0.5)


def test_clip_head_is_fp32_under_bf16_autocast(tiny_clip: LoadedModel) -> None:
    """The tower may run in bf16; the zero-shot product must not (its logits decide close argmaxes)."""
    head = Head(tiny_clip, templates=["a photo of a {c}."])
    images = torch.randn(4, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = head(images)
        features = tiny_clip.encode_image(images)
    assert logits.dtype == torch.float32
    assert torch.allclose(logits, 100.0 * features.float() @ head.weights.T.float(), rtol=0, atol=1e-4)


def test_classifier_head_is_fp32_under_bf16_autocast() -> None:
    """The body runs in bf16; the linear head is computed in fp32 from the body's features."""
    torch.manual_seed(0)
    model = build_model(model_config("ce-tiny")).eval()
    loaded = LoadedModel("classifier", model, None, {}, wnids(), {}, torch.device("cpu"), "imagenet-captions")
    images = torch.randn(8, 3, 32, 32)
    seen: list[torch.Tensor] = []
    hook = model.fc.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = Head(loaded)(images)
    hook.remove()
    assert logits.dtype == torch.float32 and len(seen) == 1 and seen[0].dtype == torch.bfloat16
    expected = F.linear(seen[0].float(), model.fc.weight, model.fc.bias)  # fp32 head on the bf16 features
    assert torch.allclose(logits, expected, rtol=0, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # and the hook is gone afterwards
        assert model(images).dtype == torch.bfloat16
