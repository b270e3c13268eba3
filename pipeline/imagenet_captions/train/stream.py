"""The loader's worker side: the deterministic sample streams and the raw batches of each step.

Every batch is a pure function of (seed, epoch, step) (see :mod:`.data` for why): an epoch's shard
order comes from ``(seed, epoch)``; worker *slot* ``s`` of ``W`` on rank ``r`` reads its own shards
through its own seeded shuffle buffer and builds the batches of steps ``s, s+W, ...``. A sample
that cannot be used is skipped and counted under a named reason. The batches leave the workers
raw: decoded and cropped images (``decode="cpu"``) or JPEG bytes for the device decoder.
"""

from __future__ import annotations

import dataclasses
import io
import random
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from imagenet_captions.train.augment import Augment, decode_crop_pil
from imagenet_captions.train.shard_spec import ShardSpec

if TYPE_CHECKING:
    from imagenet_captions.train.models import Tokenizer


@dataclasses.dataclass
class LoaderConfig:
    """Everything that decides the batches (and so must match on resume)."""

    batch_size: int  # per rank
    augment: Augment
    kind: str  # "clip" (needs captions) or "classifier" (needs labels)
    tokenizer: dict[str, Any] | None
    seed: int = 0
    workers: int = 4
    shuffle_buffer: int = 2000
    resampled: bool = False
    decode: str = "cpu"  # "cpu" or "device"


def _rng(*parts: Any) -> random.Random:
    return random.Random(":".join(str(p) for p in parts))


def _image_bytes(sample: dict[str, Any]) -> bytes:
    """A sample's image: WebDataset names the member by its extension, ``.jpg`` or ``.jpeg``."""
    data: bytes = sample["jpg"] if "jpg" in sample else sample["jpeg"]
    return data


def open_samples(url: str, wanted: frozenset[str]) -> Iterator[dict[str, Any]]:
    """The samples of one tar, only the members we use (WebDataset's tar reader and grouping)."""
    from webdataset.tariterators import group_by_keys, tar_file_expander, url_opener

    def select(fname: str) -> bool:
        return fname.rsplit(".", 1)[-1].lower() in wanted

    yield from group_by_keys(tar_file_expander(url_opener([{"url": url}]), select_files=select))


class _SlotStream:
    """Raw samples for one (rank, slot) stream of one epoch, infinite, deterministic."""

    def __init__(self, spec: ShardSpec, cfg: LoaderConfig, epoch: int, stream: int, n_streams: int) -> None:
        self.spec, self.cfg, self.epoch, self.stream, self.n_streams = spec, cfg, epoch, stream, n_streams

    def _shards(self) -> Iterator[tuple[str, bool]]:
        """(url, keep-every-n-th-sample) forever."""
        urls, n = self.spec.urls, self.n_streams
        if self.cfg.resampled:
            rng = _rng(self.cfg.seed, self.epoch, "resample", self.stream)
            while True:
                yield rng.choice(urls), len(urls) < n
        p = 0
        while True:
            order = list(urls)
            _rng(self.cfg.seed, self.epoch, "shards", p).shuffle(order)
            if len(order) >= n:
                yield from ((u, False) for u in order[self.stream :: n])
            else:
                yield from ((u, True) for u in order)
            p += 1

    def samples(self) -> Iterator[dict[str, Any]]:
        wanted = frozenset({"jpg", "jpeg", "txt", "cls"})
        i = 0
        for url, split in self._shards():
            for s in open_samples(url, wanted):
                if split:
                    i += 1
                    if (i - 1) % self.n_streams != self.stream:
                        continue
                yield s


def _shuffled(samples: Iterator[dict[str, Any]], size: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    from webdataset.filters import _shuffle

    if size <= 1:
        return samples
    return _shuffle(samples, bufsize=size, initial=size, rng=rng)


class StepsDataset(torch.utils.data.IterableDataset):
    """The batches of global steps ``[start, end)`` of one rank; worker ``w`` yields every ``W``-th.

    Global step ``g`` is step ``g % steps_per_epoch`` of epoch ``g // steps_per_epoch``; within an
    epoch, step ``i`` belongs to slot ``i % W``. The DataLoader hands out worker ``w``'s batches for
    loader positions ``w, w+W, ...``, so a worker serves one slot per epoch and runs across epoch
    boundaries without restarting (restarting workers every epoch stalls the GPU).

    Yields dicts: ``images`` (uint8 [B, S, S, 3] when decoded on CPU) or ``jpg_data`` (all JPEG
    bytes in one uint8 tensor) and ``jpg_offsets`` with ``seed`` for the device decoder; ``tokens``
    or ``labels``; ``epoch`` and ``step`` (in the epoch); ``skipped`` (Counter of samples dropped,
    by reason, while building this batch).
    """

    def __init__(
        self,
        spec: ShardSpec,
        cfg: LoaderConfig,
        start: int,
        end: int,
        steps_per_epoch: int,
        rank: int,
        world: int,
    ) -> None:
        super().__init__()
        self.spec, self.cfg, self.start, self.end, self.spe = spec, cfg, start, end, steps_per_epoch
        self.rank, self.world = rank, world
        self._tokenizer: Tokenizer | None = None

    def _tokenize(self, texts: list[str]) -> torch.Tensor:
        if self._tokenizer is None:
            from imagenet_captions.train.models import make_tokenizer

            self._tokenizer = make_tokenizer(self.cfg.tokenizer)
            if self._tokenizer is None:
                raise ValueError("captions to tokenize, but the loader's config names no tokenizer")
        return self._tokenizer(texts)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        n_workers = max(1, self.cfg.workers)
        if info is not None and info.num_workers != n_workers:
            raise RuntimeError("StepsDataset must run with exactly cfg.workers DataLoader workers")
        # In-process (workers=0, or iterated directly) one iterator plays every slot in step order,
        # so the batches are the same as with worker processes.
        mine = (
            range(self.start, self.end) if info is None else range(self.start + info.id, self.end, n_workers)
        )
        streams: dict[tuple[int, int], Iterator[dict[str, Any]]] = {}
        for g in mine:
            epoch, i = divmod(g, self.spe)
            key = (epoch, i % n_workers)
            if key not in streams:
                streams = {k: v for k, v in streams.items() if k[0] == epoch}  # drop finished epochs
                streams[key] = self._slot_batches(epoch, key[1], first=i)
            yield next(streams[key])

    def _slot_batches(self, epoch: int, slot: int, first: int) -> Iterator[dict[str, Any]]:
        """The batches of steps slot, slot+W, ... of ``epoch`` from ``first`` on (earlier ones skipped raw)."""
        cfg = self.cfg
        n_workers = max(1, cfg.workers)
        stream = self.rank * n_workers + slot
        n_streams = self.world * n_workers
        raw = _SlotStream(self.spec, cfg, epoch, stream, n_streams).samples()
        raw = _shuffled(raw, cfg.shuffle_buffer, _rng(cfg.seed, epoch, "buffer", stream))
        seeds = _rng(cfg.seed, epoch, "augment", stream)
        step = slot
        while True:
            batch: list[dict[str, Any]] = []
            skipped: Counter[str] = Counter()
            seed = seeds.getrandbits(63)
            if step < first:
                # Resume: consume exactly what this batch would take, without decoding images.
                while len(batch) < cfg.batch_size:
                    s = next(raw)
                    if self._check(s, skipped) is None:
                        batch.append(s)
                step += n_workers
                continue
            out = self._build(raw, seed, step)
            out["epoch"] = epoch
            yield out
            step += n_workers

    def _check(self, s: dict[str, Any], skipped: Counter[str]) -> str | None:
        """Why sample ``s`` cannot be used (the reason is counted), or None when it can."""
        reason = None
        if "jpg" not in s and "jpeg" not in s:
            reason = "missing_jpg"
        elif self.cfg.kind == "clip" and "txt" not in s:
            reason = "missing_txt"
        elif self.cfg.kind == "classifier":
            if "cls" not in s:
                reason = "missing_cls"
            else:
                try:
                    label = int(s["cls"].decode("ascii").strip())
                    if not 0 <= label < 1000:
                        reason = "bad_label"
                except (ValueError, UnicodeDecodeError):
                    reason = "bad_label"
        if reason is None:
            try:  # the header only (microseconds): a non-image is caught the same way when skipping
                Image.open(io.BytesIO(_image_bytes(s))).size  # noqa: B018
            except Exception:
                reason = "corrupt_image"
        if reason:
            skipped[reason] += 1
        return reason

    def _build(self, raw: Iterator[dict[str, Any]], seed: int, step: int) -> dict[str, Any]:
        cfg = self.cfg
        rng = random.Random(seed)
        skipped: Counter[str] = Counter()
        images: list[np.ndarray] = []
        jpgs: list[bytes] = []
        texts: list[str] = []
        labels: list[int] = []
        keys: list[str] = []
        while len(keys) < cfg.batch_size:
            s = next(raw)
            if self._check(s, skipped) is not None:
                continue
            data = _image_bytes(s)
            if cfg.decode == "cpu":
                try:
                    images.append(decode_crop_pil(data, cfg.augment, rng))
                except Exception:
                    skipped["corrupt_image"] += 1
                    continue
            else:
                jpgs.append(data)
            keys.append(s["__key__"])
            if cfg.kind == "clip":
                texts.append(s["txt"].decode("utf-8", errors="replace"))
            else:
                labels.append(int(s["cls"].decode("ascii").strip()))
        out: dict[str, Any] = {"step": step, "keys": keys, "skipped": dict(skipped), "seed": seed}
        if cfg.decode == "cpu":
            out["images"] = torch.from_numpy(np.stack(images))
        else:
            # One buffer and offsets, not a tensor per image: each tensor crossing from a worker costs
            # a shared-memory segment and a file descriptor (thousands per second otherwise).
            out["jpg_data"] = torch.from_numpy(np.frombuffer(b"".join(jpgs), dtype=np.uint8).copy())
            out["jpg_offsets"] = torch.tensor(np.cumsum([0] + [len(j) for j in jpgs]), dtype=torch.long)
        if cfg.kind == "clip":
            out["tokens"] = self._tokenize(texts)
        else:
            out["labels"] = torch.tensor(labels, dtype=torch.long)
        return out
