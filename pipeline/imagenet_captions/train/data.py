"""The shard loader: WebDataset tars -> batches on the device, deterministic and resumable.

Why it is shaped like this:

- **Exact resume.** Every batch is a pure function of (seed, epoch, step): an epoch's shard order is
  drawn from ``(seed, epoch)``; the loader's worker *slot* ``s`` (of ``W``) on rank ``r`` builds the
  batches of steps ``s, s+W, s+2W, ...`` from its own shards, its own seeded shuffle buffer and its
  own seeded augmentation. To resume at step ``k`` a worker re-reads its stream and drops the raw
  (undecoded) batches before ``k``: cheap, and the batches after are bit-identical. A resume must
  keep the world size, workers and batch size (checked by the trainer).
- **Fixed epochs.** An epoch is ``num_samples // global_batch`` steps, ``num_samples`` from
  ``sizes.json`` (open_clip's format) or given. Streams cycle (reshuffled) over their shards, or
  draw shards with replacement (``resampled``), so ranks never run dry at different times.
- **Split by rank and worker.** With at least as many shards as streams, each stream reads its own
  shards; with fewer, every stream reads all shards and keeps every ``n``-th sample.
- **Decode where it is fastest.** ``decode="cpu"``: workers decode with Pillow (JPEG draft mode
  shrinks by DCT scaling when the crop allows) and crop+resize in one ``resize(box=...)``.
  ``decode="device"``: workers only read bytes and tokenise; the main process decodes the batch with
  ``torchvision.io.decode_jpeg(device=cuda)`` (nvjpeg) and does random-resized-crop for all
  same-sized images at once with ``roi_align``, on a side CUDA stream in a prefetch thread so it
  overlaps the training step. Any image nvjpeg refuses (CMYK, progressive oddities, corrupt) is
  decoded by Pillow on the CPU and counted as ``cpu_fallback``.
- **Nothing is silently dropped.** A sample without an image, caption or label, or an image no
  decoder can read, is skipped, replaced by the next sample, and counted under a named reason
  (``missing_jpg``, ``missing_txt``, ``missing_cls``, ``bad_label``, ``corrupt_image``).
"""

from __future__ import annotations

import dataclasses
import glob
import io
import json
import math
import os
import queue
import random
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from imagenet_captions.errors import UsageError


# ---------------------------------------------------------------------------------------------------
# Shards and sizes
# ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class ShardSpec:
    """The resolved training data: tar paths, their sample counts (if known), samples per epoch."""

    urls: list[str]
    sizes: dict[str, int] | None
    num_samples: int

    def describe(self) -> dict[str, Any]:
        return {"shards": self.urls, "num_samples": self.num_samples, "sizes": self.sizes}


def resolve_shards(spec: str, num_samples: int | None = None) -> ShardSpec:
    """Shards from a directory (its ``*.tar``, or ``<dir>/shards/*.tar``) or a brace pattern.

    ``sizes.json`` beside the tars gives each shard's count; without it ``num_samples`` is required.
    """
    from webdataset.shardlists import expand_urls

    p = Path(spec)
    if p.is_dir():
        if not list(p.glob("*.tar")) and (p / "shards").is_dir():
            p = p / "shards"
        urls = sorted(str(x) for x in p.glob("*.tar"))
        if not urls:
            raise UsageError(f"--shards: no .tar shards in {spec}")
    else:
        urls = []
        for u in expand_urls(spec):
            urls.extend(sorted(glob.glob(u)) if any(c in u for c in "*?[") else [u])
        missing = [u for u in urls if not os.path.isfile(u)]
        if not urls or missing:
            raise UsageError(f"--shards: shard not found: {missing[0] if missing else spec}")
    sizes_path = Path(urls[0]).parent / "sizes.json"
    sizes = None
    if sizes_path.is_file():
        try:
            all_sizes = json.loads(sizes_path.read_text())
            sizes = {u: int(all_sizes[os.path.basename(u)]) for u in urls}
        except (ValueError, KeyError, TypeError) as e:
            raise UsageError(f"{sizes_path} does not list every shard with a count: {e}") from e
    if num_samples is None:
        if sizes is None:
            raise UsageError(f"no sizes.json beside {urls[0]}; pass --train-num-samples")
        num_samples = sum(sizes.values())
    if num_samples <= 0:
        raise UsageError("--shards: the shards hold no samples")
    return ShardSpec(urls=urls, sizes=sizes, num_samples=int(num_samples))


# ---------------------------------------------------------------------------------------------------
# Augmentation and decoding
# ---------------------------------------------------------------------------------------------------
def rrc_params(
    h: int, w: int, scale: tuple[float, float], ratio: tuple[float, float], rng: random.Random
) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a RandomResizedCrop, torchvision's algorithm on our own RNG."""
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        ar = math.exp(rng.uniform(*log_ratio))
        cw = int(round(math.sqrt(target * ar)))
        ch = int(round(math.sqrt(target / ar)))
        if 0 < cw <= w and 0 < ch <= h:
            return rng.randint(0, h - ch), rng.randint(0, w - cw), ch, cw
    in_ratio = w / h
    if in_ratio < min(ratio):
        cw, ch = w, int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        ch, cw = h, int(round(h * max(ratio)))
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


@dataclasses.dataclass(frozen=True)
class Augment:
    """Training augmentation: RandomResizedCrop to ``size`` and an optional horizontal flip."""

    size: int
    scale: tuple[float, float] = (0.9, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: bool = False


def decode_crop_pil(data: bytes, aug: Augment, rng: random.Random) -> np.ndarray:
    """Decode one image with Pillow and random-resized-crop it: uint8 array [size, size, 3].

    Crop parameters are drawn on the full-size geometry first, then JPEG draft mode decodes at the
    smallest DCT scale that still leaves the crop at least ``size`` pixels, so small crops of big
    photos cost a fraction of a full decode. Greyscale and CMYK images come out RGB.
    """
    im = Image.open(io.BytesIO(data))
    w, h = im.size
    top, left, ch, cw = rrc_params(h, w, aug.scale, aug.ratio, rng)
    flip = aug.hflip and rng.random() < 0.5
    if im.format == "JPEG":
        im.draft("RGB", (max(1, w * aug.size // cw), max(1, h * aug.size // ch)))
    sx, sy = im.size[0] / w, im.size[1] / h
    im = im.convert("RGB")
    out = im.resize(
        (aug.size, aug.size),
        Image.BILINEAR,
        box=(left * sx, top * sy, (left + cw) * sx, (top + ch) * sy),
    )
    if flip:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(out)


def crop_params_for_batch(shapes: list[tuple[int, int]], aug: Augment, seed: int) -> list[tuple[int, ...]]:
    """Per-image (top, left, h, w, flip) for a device-decoded batch, from the batch's own seed."""
    rng = random.Random(seed)
    out = []
    for h, w in shapes:
        top, left, ch, cw = rrc_params(h, w, aug.scale, aug.ratio, rng)
        out.append((top, left, ch, cw, int(aug.hflip and rng.random() < 0.5)))
    return out


def device_decode_crop(
    jpgs: list[torch.Tensor], aug: Augment, seed: int, device: torch.device
) -> tuple[torch.Tensor, int, int]:
    """Decode a batch of JPEG byte tensors on ``device`` and random-resized-crop them there.

    Returns (float images [N, 3, size, size] in 0..255 on ``device``, number of CPU fallbacks,
    number of images no decoder could read, replaced by grey and counted as ``corrupt_image``).
    Images of the same size are cropped and resized together by one ``roi_align`` (bilinear with
    adaptive sampling, i.e. averaging over each output pixel's footprint: an anti-aliased resize).
    """
    from torchvision.io import ImageReadMode, decode_jpeg
    from torchvision.ops import roi_align

    fallbacks = 0
    try:
        images = decode_jpeg(jpgs, mode=ImageReadMode.RGB, device=device)
    except Exception:  # one bad image fails the whole batch call: retry one by one
        images = []
        for data in jpgs:
            try:
                images.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
            except Exception:
                images.append(None)
    decoded: list[torch.Tensor | None] = list(images)
    corrupt = 0
    for i, im in enumerate(decoded):
        if im is None or im.ndim != 3 or im.shape[0] != 3:
            fallbacks += 1
            try:
                arr = np.asarray(Image.open(io.BytesIO(jpgs[i].numpy().tobytes())).convert("RGB"))
            except Exception:  # passed the header check but no decoder reads it: a grey image, counted
                corrupt += 1
                arr = np.full((aug.size, aug.size, 3), 128, dtype=np.uint8)
            decoded[i] = torch.from_numpy(arr.copy()).permute(2, 0, 1).to(device, non_blocking=True)
    params = crop_params_for_batch([(int(t.shape[1]), int(t.shape[2])) for t in decoded], aug, seed)
    out = torch.empty((len(decoded), 3, aug.size, aug.size), dtype=torch.float32, device=device)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, t in enumerate(decoded):
        groups.setdefault((int(t.shape[1]), int(t.shape[2])), []).append(i)
    for idx in groups.values():
        stack = torch.stack([decoded[i] for i in idx]).float()
        boxes = torch.tensor(
            [
                [k, params[i][1], params[i][0], params[i][1] + params[i][3], params[i][0] + params[i][2]]
                for k, i in enumerate(idx)
            ],
            dtype=torch.float32,
        ).to(device)
        crops = roi_align(
            stack, boxes, output_size=(aug.size, aug.size), spatial_scale=1.0, sampling_ratio=-1, aligned=True
        )
        out[torch.tensor(idx, device=device)] = crops
    flips = [i for i, p in enumerate(params) if p[4]]
    if flips:
        fi = torch.tensor(flips, device=device)
        out[fi] = out[fi].flip(-1)
    return out, fallbacks, corrupt


# ---------------------------------------------------------------------------------------------------
# The per-worker stream
# ---------------------------------------------------------------------------------------------------
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


def _open_samples(url: str, wanted: frozenset[str]) -> Iterator[dict[str, Any]]:
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
            for s in _open_samples(url, wanted):
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
        self._tokenizer = None

    def _tokenize(self, texts: list[str]) -> torch.Tensor:
        if self._tokenizer is None:
            from imagenet_captions.train.models import make_tokenizer

            self._tokenizer = make_tokenizer(self.cfg.tokenizer)
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
                Image.open(io.BytesIO(s.get("jpg", s.get("jpeg")))).size  # noqa: B018
            except Exception:
                reason = "corrupt_image"
        if reason:
            skipped[reason] += 1
        return reason

    def _build(self, raw: Iterator[dict[str, Any]], seed: int, step: int) -> dict[str, Any]:
        cfg = self.cfg
        rng = random.Random(seed)
        skipped: Counter[str] = Counter()
        images, jpgs, texts, labels, keys = [], [], [], [], []
        while len(keys) < cfg.batch_size:
            s = next(raw)
            if self._check(s, skipped) is not None:
                continue
            data = s.get("jpg", s.get("jpeg"))
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


def _collate(x: Any) -> Any:
    return x


# ---------------------------------------------------------------------------------------------------
# The loader the training loop uses
# ---------------------------------------------------------------------------------------------------
class ShardLoader:
    """Batches for one rank, ready on the device: normalised float images, tokens or labels."""

    def __init__(
        self,
        spec: ShardSpec,
        cfg: LoaderConfig,
        mean: list[float],
        std: list[float],
        device: torch.device,
        rank: int = 0,
        world: int = 1,
        channels_last: bool = False,
        prefetch: int = 2,
    ) -> None:
        global_batch = cfg.batch_size * world
        if spec.num_samples < global_batch:
            raise UsageError(
                f"--batch-size: {spec.num_samples} samples per epoch is less than one global batch "
                f"({global_batch})"
            )
        self.spec, self.cfg, self.device, self.rank, self.world = spec, cfg, device, rank, world
        self.steps_per_epoch = spec.num_samples // global_batch
        self.channels_last = channels_last
        self.prefetch = prefetch
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255
        self.stats: Counter[str] = Counter()

    def _loader(self, start: int, end: int) -> torch.utils.data.DataLoader:
        ds = StepsDataset(self.spec, self.cfg, start, end, self.steps_per_epoch, self.rank, self.world)
        w = self.cfg.workers
        return torch.utils.data.DataLoader(
            ds,
            batch_size=None,
            num_workers=w,
            collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            # 2 batches per worker: enough to stay ahead, and raw batches live in /dev/shm meanwhile.
            prefetch_factor=2 if w > 0 else None,
        )

    def _finish(self, b: dict[str, Any]) -> dict[str, Any]:
        """Decode (device path), normalise and move one raw batch; runs on the current stream."""
        dev = self.device
        if "jpg_data" in b:
            data, off = b["jpg_data"], b["jpg_offsets"].tolist()
            jpgs = [data[off[i] : off[i + 1]] for i in range(len(off) - 1)]
            x, fallbacks, corrupt = device_decode_crop(jpgs, self.cfg.augment, b["seed"], dev)
            self.stats["cpu_fallback"] += fallbacks
            self.stats["corrupt_image"] += corrupt
            self.stats["device_decoded"] += len(jpgs) - fallbacks
        else:
            x = b["images"].to(dev, non_blocking=True).permute(0, 3, 1, 2).float()
            self.stats["cpu_decoded"] += x.shape[0]
        for k, v in b["skipped"].items():
            self.stats[k] += v
        x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = {"images": x, "step": b["step"], "epoch": b["epoch"], "keys": b["keys"]}
        if "tokens" in b:
            out["tokens"] = b["tokens"].to(dev, non_blocking=True)
        if "labels" in b:
            out["labels"] = b["labels"].to(dev, non_blocking=True)
        return out

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[dict[str, Any]]:
        """The batches of ``epoch`` from ``start_step`` to the end of the epoch, in step order."""
        return self.steps(epoch * self.steps_per_epoch + start_step, (epoch + 1) * self.steps_per_epoch)

    def steps(self, start: int, end: int) -> Iterator[dict[str, Any]]:
        """The batches of global steps ``[start, end)`` in order, across epochs, one set of workers."""
        raw = iter(self._loader(start, end))
        if self.device.type != "cuda" or self.prefetch <= 0:
            for b in raw:
                yield self._finish(b)
            return
        yield from self._prefetched(raw)

    def _prefetched(self, raw: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Finish batches on a side CUDA stream in a thread, ``prefetch`` ahead of the training step."""
        stream = torch.cuda.Stream(device=self.device)
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        done = object()

        def work() -> None:
            try:
                torch.cuda.set_device(self.device)
                with torch.cuda.stream(stream):
                    for b in raw:
                        if stop.is_set():
                            break
                        out = self._finish(b)
                        ev = torch.cuda.Event()
                        ev.record(stream)
                        q.put((out, ev))
                q.put((done, None))
            except BaseException as e:  # hand the error to the consumer instead of hanging it
                q.put((e, None))

        t = threading.Thread(target=work, name="gpu-prefetch", daemon=True)
        t.start()
        try:
            while True:
                out, ev = q.get()
                if out is done:
                    break
                if isinstance(out, BaseException):
                    raise out
                torch.cuda.current_stream(self.device).wait_event(ev)
                for v in out.values():
                    if isinstance(v, torch.Tensor):
                        v.record_stream(torch.cuda.current_stream(self.device))
                yield out
        finally:
            stop.set()
            while t.is_alive():
                try:
                    q.get_nowait()
                except queue.Empty:
                    t.join(timeout=0.1)
