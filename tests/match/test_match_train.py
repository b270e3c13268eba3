"""A matched WebDataset subset is what ``train --shards`` reads, unchanged: a few CPU steps of CLIP
and of the cross-entropy baseline on the tars ``match`` writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpus_helpers import img2dataset_samples, write_webdataset

from imagenet_captions.cli import main
from imagenet_captions.train.checkpoint import read_checkpoint

pytestmark = pytest.mark.slow

#: Captions that each name one class, and two that name none (left out by the match).
CAPTIONS = ["my tabby on the sofa", "a goldfish in its bowl", "the volcano at dawn", "a golden retriever", "a day out", "text"]


@pytest.fixture(scope="module")
def matched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("matched")
    for shard in range(2):
        captions = [CAPTIONS[i % len(CAPTIONS)] for i in range(48)]
        write_webdataset(root / "wds" / f"{shard:05d}.tar", img2dataset_samples(captions, shard=shard))
    out = root / "out"
    assert main(["match", "--corpus", f"webdataset:{root / 'wds'}", "--out", str(out), "--num-shards", "4"]) == 0
    sizes = json.loads((out / "shards" / "sizes.json").read_text())
    assert sum(sizes.values()) == 64  # 2 tars x 48 samples x 4 of 6 captions
    return out


@pytest.mark.parametrize("model", ["clip-tiny", "ce-tiny"])
def test_train_reads_a_matched_webdataset_subset(matched: Path, tmp_path: Path, model: str):
    run = tmp_path / model
    argv = ["train", "--shards", str(matched), "--out", str(run), "--device", "cpu", "--model", model]
    argv += ["--steps", "4", "--batch-size", "8", "--workers", "1", "--log-every", "2"]
    assert main(argv) == 0
    ckpt = read_checkpoint(run / "checkpoints" / "latest.pt")
    assert ckpt["step"] == 4 and ckpt["data"]["num_samples"] == 64 and len(ckpt["data"]["shards"]) == 4
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 4 and rows[-1]["loss"] == rows[-1]["loss"]  # a number, not NaN
