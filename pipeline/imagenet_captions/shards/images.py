"""A shard's images made ready for its tar: read by reference, checked (or re-encoded, resized), in
the shard's order, a few ahead of the writer on threads when that pays.

The bytes are read here, in the shard's writer, never carried through a shuffle. An image that
cannot be stored is a reason and a message (:class:`Loaded`), never an exception: the shard is
written without it. Nothing here writes a file.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple, TypeVar

from imagenet_captions import fsio
from imagenet_captions.images import ImageError, ImageOptions, process_image
from imagenet_captions.records import ExpectedImage, ImageRef, Sample
from imagenet_captions.sources.imagenet import ImageReader

T = TypeVar("T")
R = TypeVar("R")

#: Threads that decode and resize images ahead of the tar writer when there is decoding to overlap
#: (``--resize``) or latency to hide (an object store); see :func:`auto_threads`.
READ_THREADS = min(4, os.cpu_count() or 1)
#: How many images may be read ahead of the writer: bounds memory at ~this many images per shard.
READ_AHEAD = 64


class Loaded(NamedTuple):
    """One image made ready for the tar: its bytes and info (the schema's image columns), or why it
    cannot be stored."""

    jpg: bytes | None
    info: dict[str, Any] | None
    reason: str | None = None
    message: str = ""


def auto_threads(samples: Sequence[Sample], options: ImageOptions) -> int:
    """Read-ahead threads worth having for this shard: none for local pass-through.

    Measured on 2 cores (docs/shards.md): with ``--resize 256`` two threads write more images
    per second (decode and resize release the GIL); for local pass-through, where each image is a
    short read and a header check, the hand-off between threads costs more CPU than it hides."""
    first = next((s.image for s in samples if s.image is not None), None)
    remote = first is not None and fsio.is_remote(first["path"])
    return READ_THREADS if options.resize or remote else 0


def load_image(
    reader: ImageReader,
    ref: ImageRef | None,
    options: ImageOptions,
    expected: ExpectedImage | None = None,
) -> Loaded:
    """Read and check (or re-encode, resize) one image; failures become a reason, never an exception.

    The info carries the sha256 and size of the source bytes as read (the image's identity in a
    release). ``expected`` (a text-release rebuild) is what the publisher read: other bytes are
    ``image_differs``, so a user's different copy of an image never passes for the publisher's."""
    if ref is None:
        return Loaded(None, None, "no_image")
    try:
        data = reader.read(ref)
        sha256 = hashlib.sha256(data).hexdigest()
        if expected is not None and expected.sha256 and expected.sha256 != sha256:
            return Loaded(
                None,
                None,
                "image_differs",
                f"sha256 {sha256[:16]}.., {len(data)} bytes; the publisher's: "
                f"{expected.sha256[:16]}.., {expected.size} bytes",
            )
        jpg, info = process_image(data, options)
        return Loaded(jpg, {**info, "image_sha256": sha256, "image_size": len(data)})
    except ImageError as e:
        return Loaded(None, None, e.reason, e.message)
    except OSError as e:
        return Loaded(None, None, "unreadable_image", f"{type(e).__name__}: {e}")


def load_images(
    samples: Sequence[Sample], options: ImageOptions, threads: int | None = None
) -> Iterator[tuple[Sample, Loaded]]:
    """Each sample with its image loaded, in the order of ``samples``; ``threads`` (default:
    :func:`auto_threads`) load the next ones while the caller writes. The files it opened are
    closed when the iteration ends or is closed."""
    if threads is None:
        threads = auto_threads(samples, options)
    with ImageReader() as reader:

        def load(sample: Sample) -> Loaded:
            return load_image(reader, sample.image, options, sample.expected)

        yield from zip(samples, read_ahead(load, samples, threads), strict=True)


def read_ahead(
    fn: Callable[[T], R], items: Sequence[T], threads: int, ahead: int = READ_AHEAD
) -> Iterator[R]:
    """``map(fn, items)`` in order, computed by ``threads`` threads at most ``ahead`` items ahead.

    Why not ``Executor.map``: it submits every item at once, so a slow consumer would hold every
    image of the shard in memory; this keeps a bounded window. ``threads <= 0`` runs inline.
    """
    if threads <= 0 or len(items) < 2:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="shard-read") as pool:
        window: deque[Future[R]] = deque()
        for item in items:
            if len(window) >= ahead:
                yield window.popleft().result()
            window.append(pool.submit(fn, item))
        while window:
            yield window.popleft().result()
