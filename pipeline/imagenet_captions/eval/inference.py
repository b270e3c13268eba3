"""Batched inference and top-1 scoring over the evaluation sets.

File reading runs in DataLoader workers. On CUDA the workers hand over the raw bytes of JPEGs and
those of a batch are decoded together on the GPU (``torchvision.io.decode_jpeg(list, device="cuda")``,
as the training loader does); other formats (PNG: all of ObjectNet) are decoded by the workers, and
a JPEG nvJPEG refuses (CMYK, a corrupt stream) on the CPU in the main process; both are counted in
``cpu_decode_fallback``. Resize, centre crop and normalisation then
run on the GPU. Without CUDA the workers decode with PIL and apply the same preprocessing (the
model's ``preprocess`` contract: shorter side to ``resize``, centre crop ``image_size``, mean/std).

An image that cannot be decoded at all is not scored and is counted as ``unreadable_image``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image, ImageOps

from imagenet_captions.eval.datasets import EvalSet
from imagenet_captions.eval.heads import predict
from imagenet_captions.train import resources
from imagenet_captions.train.device_decode import wait_for_stream
from imagenet_captions.train.resources import SAMPLE_OVERHEAD, fit_workers, mean_file_bytes

if TYPE_CHECKING:
    from torchvision.transforms import InterpolationMode

log = logging.getLogger(__name__)
_JPEG_MAGIC = b"\xff\xd8"


def _interpolation(name: str) -> InterpolationMode:
    from torchvision.transforms import InterpolationMode

    return InterpolationMode(str(name).lower())


def cpu_transform(preprocess: Mapping, border: int = 0) -> Callable[[bytes], torch.Tensor]:
    """bytes -> normalised [3, S, S] float tensor, decoded with PIL (the CPU path)."""
    from torchvision import transforms as T

    steps = [
        T.Resize(
            int(preprocess.get("resize", preprocess["image_size"])),
            _interpolation(preprocess["interpolation"]),
        ),
        T.CenterCrop(int(preprocess["image_size"])),
        T.ToTensor(),
        T.Normalize(preprocess["mean"], preprocess["std"]),
    ]
    tf = T.Compose(steps)

    def run(data: bytes) -> torch.Tensor:
        with Image.open(io.BytesIO(data)) as opened:
            im = opened.convert("RGB")
            if border:
                im = ImageOps.crop(im, border=border)
            return tf(im)

    return run


class _Files(torch.utils.data.Dataset):
    """Reads file i for the loader; see :func:`_collate` for what the main process gets.

    With ``gpu_jpeg`` a JPEG is handed over as its bytes (decoded later, in a batch, on the GPU);
    anything else (PNG: all of ObjectNet) is decoded and preprocessed here with ``transform``, so
    the CPU work runs in parallel workers rather than in the main process. None: unreadable.
    """

    def __init__(
        self, paths: Sequence[str], transform: Callable[[bytes], torch.Tensor], gpu_jpeg: bool
    ) -> None:
        self.paths = list(paths)
        self.transform = transform
        self.gpu_jpeg = gpu_jpeg

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None]:
        with open(self.paths[i], "rb") as fh:
            data = fh.read()
        if self.gpu_jpeg and data[:2] == _JPEG_MAGIC:
            return i, torch.frombuffer(bytearray(data), dtype=torch.uint8)
        try:
            return i, self.transform(data)
        except Exception as e:  # a corrupt or truncated file: counted, not fatal
            log.warning("cannot decode %s: %s", self.paths[i], e)
            return i, None


def _collate(items: Sequence[tuple[int, torch.Tensor | None]]) -> dict[str, Any]:
    """A batch as a few tensors, not one per image.

    One tensor per image would cross from a worker as one shared-memory handle each, and a deep
    prefetch queue of 256-image batches can run out of file descriptors. ``blobs`` holds the JPEG
    bytes end to end (``blob_pos``: their positions in the batch), ``images`` the images the worker
    already preprocessed (``image_pos``); positions in neither were unreadable.
    """
    idx = [i for i, _ in items]
    blobs = [(k, x) for k, (_, x) in enumerate(items) if x is not None and x.dim() == 1]
    images = [(k, x) for k, (_, x) in enumerate(items) if x is not None and x.dim() == 3]
    return {
        "idx": idx,
        "blobs": torch.cat([x for _, x in blobs]) if blobs else None,
        "blob_sizes": [len(x) for _, x in blobs],
        "blob_pos": [k for k, _ in blobs],
        "images": torch.stack([x for _, x in images]) if images else None,
        "image_pos": [k for k, _ in images],
    }


def prepare_batch(batch: dict, gpu: GpuPreprocess | None) -> tuple[list[int], torch.Tensor | None]:
    """(positions in the batch that decoded, in order; their images, ready for the model)."""
    parts: list[tuple[int, torch.Tensor]] = []
    if batch["blob_pos"]:
        if gpu is None:
            raise ValueError("encoded images need the GPU preprocessor")
        kept, images = gpu(list(torch.split(batch["blobs"], batch["blob_sizes"])))
        parts += [(batch["blob_pos"][k], images[j]) for j, k in enumerate(kept)]
    if batch["image_pos"]:
        device = gpu.device if gpu is not None else batch["images"].device
        if gpu is not None:
            gpu.cpu_fallback += len(batch["image_pos"])
        images = batch["images"].to(device, non_blocking=True)
        parts += list(zip(batch["image_pos"], images, strict=True))
    if not parts:
        return [], None
    parts.sort(key=lambda p: p[0])
    return [p for p, _ in parts], torch.stack([x for _, x in parts])


@dataclass
class GpuPreprocess:
    """Decode a batch of encoded images on the GPU and preprocess it there."""

    preprocess: Mapping
    device: torch.device
    border: int = 0
    cpu_fallback: int = 0
    unreadable: int = 0
    _mean: torch.Tensor = field(init=False)
    _std: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self._mean = torch.tensor(self.preprocess["mean"], device=self.device).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(self.preprocess["std"], device=self.device).view(1, 3, 1, 1) * 255

    def decode(self, blobs: Sequence[torch.Tensor]) -> list[torch.Tensor | None]:
        from torchvision.io import ImageReadMode, decode_image, decode_jpeg

        out: list[torch.Tensor | None] = [None] * len(blobs)
        jpeg_idx = [i for i, b in enumerate(blobs) if bytes(b[:2].tolist()) == _JPEG_MAGIC]
        try:
            if jpeg_idx:
                wait_for_stream(self.device)  # nvJPEG writes without waiting for this stream
                decoded = decode_jpeg(
                    [blobs[i] for i in jpeg_idx], mode=ImageReadMode.RGB, device=self.device
                )
                for i, img in zip(jpeg_idx, decoded, strict=True):
                    out[i] = img
        except Exception:  # one bad stream (or a CMYK one) fails the batch: retry one by one
            for i in jpeg_idx:
                with contextlib.suppress(Exception):
                    wait_for_stream(self.device)
                    out[i] = decode_jpeg(blobs[i], mode=ImageReadMode.RGB, device=self.device)
        for i, b in enumerate(blobs):
            if out[i] is not None:
                continue
            self.cpu_fallback += 1
            try:
                out[i] = decode_image(b, mode=ImageReadMode.RGB).to(self.device, non_blocking=True)
            except Exception:
                try:
                    with Image.open(io.BytesIO(b.numpy().tobytes())) as im:
                        arr = torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)
                    out[i] = arr.to(self.device)
                except Exception:
                    self.unreadable += 1
        return out

    def __call__(self, blobs: Sequence[torch.Tensor]) -> tuple[list[int], torch.Tensor]:
        """(positions in ``blobs`` that decoded, [N, 3, S, S] float batch).

        Images of the same size are resized together (most of ImageNet is 500x375 or 375x500), so
        a batch costs a few kernel launches per distinct size rather than per image.
        """
        from torchvision.transforms.v2 import functional as TF

        size = int(self.preprocess["image_size"])
        resize = int(self.preprocess.get("resize", size))
        interp = _interpolation(self.preprocess["interpolation"])
        by_shape: dict[tuple[int, ...], list[tuple[int, torch.Tensor]]] = {}
        for i, img in enumerate(self.decode(blobs)):
            if img is None:
                continue
            if self.border:
                b = self.border
                img = img[:, b : img.shape[1] - b, b : img.shape[2] - b]
            by_shape.setdefault(tuple(img.shape), []).append((i, img))
        kept: list[int] = []
        parts: list[torch.Tensor] = []
        for group in by_shape.values():
            stack = torch.stack([img for _, img in group])
            stack = TF.resize(stack, [resize], interpolation=interp, antialias=True)
            parts.append(TF.center_crop(stack, [size, size]))
            kept += [i for i, _ in group]
        if not parts:
            return kept, torch.empty(0, 3, size, size, device=self.device)
        order = sorted(range(len(kept)), key=kept.__getitem__)
        batch = torch.cat(parts)[torch.tensor(order, device=self.device)].float()
        return sorted(kept), (batch - self._mean) / self._std


@dataclass
class Scorer:
    """Counts top-1 hits for one reported key over (a subset of) an EvalSet's images."""

    key: str
    class_sublist: Sequence[int] | None
    #: Only images whose true class is in this set are scored (None: all images).
    only_classes: frozenset[int] | None = None
    correct: int = 0
    total: int = 0

    def update(self, logits: torch.Tensor, targets: Sequence[tuple[int, ...]]) -> None:
        preds = predict(logits, self.class_sublist).tolist()
        for pred, target in zip(preds, targets, strict=True):
            if self.only_classes is not None and target[0] not in self.only_classes:
                continue
            self.total += 1
            self.correct += int(pred in target)

    @property
    def top1(self) -> float:
        return self.correct / self.total if self.total else float("nan")


def batch_bytes(paths: Sequence[str], preprocess: Mapping, batch_size: int, on_gpu: bool) -> int:
    """Shared memory one batch takes between a worker and the main process.

    On a GPU the workers hand over JPEG bytes (sized from the first files); on the CPU, images
    already preprocessed: float32, 3 x S x S each.
    """
    per_image = mean_file_bytes(paths) if on_gpu else 3 * int(preprocess["image_size"]) ** 2 * 4
    return int(batch_size * (per_image + SAMPLE_OVERHEAD))


def image_loader(
    paths: Sequence[str],
    preprocess: Mapping,
    device: torch.device,
    batch_size: int,
    workers: int,
    border: int = 0,
    *,
    persistent_workers: bool = False,
    drop_last: bool = False,
) -> tuple[torch.utils.data.DataLoader, GpuPreprocess | None]:
    """The batches of ``paths`` as eval reads them, and the GPU preprocessor (None on the CPU).

    One function, so that the inference benchmark measures exactly the pipeline ``eval`` runs;
    feed each batch to :func:`prepare_batch` with the preprocessor. ``persistent_workers`` and
    ``drop_last`` are for a caller that cycles through the loader (the benchmark).
    """
    on_gpu = device.type == "cuda"
    plan = fit_workers(
        workers,
        batch_bytes(paths, preprocess, batch_size, on_gpu),
        resources.free_shared_memory(),
        prefetch=4,
        may_reduce_workers=True,  # workers only read files: their number changes no result
    )
    if plan.note:
        log.warning("%s", plan.note)
    loader = torch.utils.data.DataLoader(
        _Files(paths, cpu_transform(preprocess, border), gpu_jpeg=on_gpu),
        batch_size=batch_size,
        num_workers=plan.workers,
        collate_fn=_collate,
        persistent_workers=persistent_workers and plan.workers > 0,
        prefetch_factor=plan.prefetch if plan.workers else None,
        drop_last=drop_last,
    )
    return loader, (GpuPreprocess(preprocess, device, border) if on_gpu else None)


def run_set(
    head: Callable[[torch.Tensor], torch.Tensor],
    evalset: EvalSet,
    preprocess: Mapping,
    scorers: Sequence[Scorer],
    device: torch.device,
    batch_size: int = 256,
    workers: int = 4,
    limit: int | None = None,
) -> dict:
    """Run ``head`` over ``evalset`` and update ``scorers``; returns counts and throughput."""
    paths = evalset.paths[:limit] if limit else evalset.paths
    targets = evalset.targets[:limit] if limit else evalset.targets
    on_gpu = device.type == "cuda"
    loader, gpu = image_loader(paths, preprocess, device, batch_size, workers, evalset.border)
    unreadable = 0
    start = time.perf_counter()
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_gpu):
        for collated in loader:
            idx = collated["idx"]
            kept, batch = prepare_batch(collated, gpu)
            unreadable += len(idx) - len(collated["blob_pos"]) - len(collated["image_pos"])
            if batch is None:  # nothing in this batch decoded
                continue
            logits = head(batch.to(device, non_blocking=True)).float()
            batch_targets = [targets[idx[k]] for k in kept]
            for s in scorers:
                s.update(logits, batch_targets)
    elapsed = time.perf_counter() - start
    if gpu is not None:
        unreadable += gpu.unreadable
    return {
        "images": len(paths),
        "seconds": elapsed,
        "images_per_s": len(paths) / elapsed if elapsed else float("nan"),
        "unreadable_image": unreadable,
        "cpu_decode_fallback": gpu.cpu_fallback if gpu is not None else 0,
        "decode": "gpu" if on_gpu else "cpu",
    }
