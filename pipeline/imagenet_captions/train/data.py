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

The modules, in the order a sample passes them: :mod:`.shard_spec` (which tars, how many samples),
:mod:`.stream` (workers: streams, shuffle, checks, raw batches), :mod:`.augment` (the crop; the CPU
decode), :mod:`.device_decode` (the GPU decode), and this one, :class:`ShardLoader`, the main
process's side (decode on the device, normalise, prefetch). The loader's names stay importable
from here, where the tests and benchmarks know them.
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import torch

from imagenet_captions.errors import UsageError
from imagenet_captions.train.augment import Augment, decode_crop_pil, rrc_params
from imagenet_captions.train.device_decode import crop_params_for_batch, device_decode_crop
from imagenet_captions.train.shard_spec import ShardSpec, resolve_shards
from imagenet_captions.train.stream import LoaderConfig, StepsDataset, open_samples

__all__ = [
    "Augment",
    "LoaderConfig",
    "ShardLoader",
    "ShardSpec",
    "StepsDataset",
    "crop_params_for_batch",
    "decode_crop_pil",
    "device_decode_crop",
    "open_samples",
    "resolve_shards",
    "rrc_params",
]


def pin_host_memory(device: torch.device, decode: str) -> bool:
    """Pin a raw batch only when it holds decoded images bound for a GPU: then the copy is async.

    JPEG bytes for the device decoder are parsed on the host by nvJPEG, which stages them through
    its own buffers, so pinning them first would only add a copy of every batch in the pin thread.
    """
    return device.type == "cuda" and decode == "cpu"


def _collate(x: Any) -> Any:
    """Batches are built whole in the workers (``batch_size=None``): pass them through."""
    return x


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
        worker_prefetch: int = 2,
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
        self.prefetch = prefetch  # batches finished on the device ahead of the step
        self.worker_prefetch = worker_prefetch  # raw batches each worker keeps in /dev/shm
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
            pin_memory=pin_host_memory(self.device, self.cfg.decode),
            persistent_workers=False,
            # Raw batches wait in /dev/shm: the trainer sizes this depth to it (``resources``).
            prefetch_factor=self.worker_prefetch if w > 0 else None,
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
