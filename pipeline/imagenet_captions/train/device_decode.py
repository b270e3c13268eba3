"""The loader's GPU decode: a batch of JPEGs decoded by nvjpeg and cropped there, all at once.

Runs in the main process (:class:`~imagenet_captions.train.data.ShardLoader`), on a side CUDA
stream, while workers only read bytes. Crops come from the batch's own seed through the same
:func:`~imagenet_captions.train.augment.rrc_params` as the CPU path, so a batch is reproducible on
resume. Any image nvjpeg refuses (CMYK, progressive oddities, corrupt) is decoded by Pillow and
counted; one no decoder reads becomes grey and is counted as ``corrupt_image``.
"""

from __future__ import annotations

import io
import random

import numpy as np
import torch
from PIL import Image

from imagenet_captions.train.augment import Augment, rrc_params


def wait_for_stream(device: torch.device) -> None:
    """Host-wait for the work queued on ``device``'s current stream; call it before each CUDA decode.

    torchvision's CUDA ``decode_jpeg`` allocates its outputs on the caller's stream, then nvJPEG
    writes them from a stream of its own that does not wait for the caller's (pytorch/vision#9606).
    The caching allocator hands out a block as soon as it is freed on the stream that owns it, so
    the decoder can overwrite memory that kernels queued on the caller's stream are still to read.
    A device-side wait (an event) does not hold back the hardware decoder, which writes when it is
    called (meta-pytorch/torchcodec#1634): the host has to wait.
    """
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.current_stream(device).synchronize()


def crop_params_for_batch(
    shapes: list[tuple[int, int]], aug: Augment, seed: int
) -> list[tuple[int, int, int, int, int]]:
    """Per-image (top, left, h, w, flip) for a device-decoded batch, from the batch's own seed."""
    rng = random.Random(seed)
    out: list[tuple[int, int, int, int, int]] = []
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
        wait_for_stream(device)
        images = decode_jpeg(jpgs, mode=ImageReadMode.RGB, device=device)
    except Exception:  # one bad image fails the whole batch call: retry one by one
        images = []
        for data in jpgs:
            try:
                wait_for_stream(device)
                images.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
            except Exception:
                images.append(None)
    decoded: list[torch.Tensor] = []
    corrupt = 0
    for i, im in enumerate(images):
        if im is None or im.ndim != 3 or im.shape[0] != 3:
            fallbacks += 1
            try:
                arr = np.asarray(Image.open(io.BytesIO(jpgs[i].numpy().tobytes())).convert("RGB"))
            except Exception:  # passed the header check but no decoder reads it: a grey image, counted
                corrupt += 1
                arr = np.full((aug.size, aug.size, 3), 128, dtype=np.uint8)
            im = torch.from_numpy(arr.copy()).permute(2, 0, 1).to(device, non_blocking=True)
        decoded.append(im)
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
