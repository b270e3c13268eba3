"""The image stage: the bytes that go into a shard's ``.jpg`` member, or why there are none.

The contract: :func:`process_image` takes an image file's bytes and the build's
:class:`ImageOptions` and returns ``(jpeg bytes, info)`` (the schema's image columns), or raises
:class:`ImageError` with a reason from the catalogue (``corrupt_image``, ``too_large``,
``unsupported_image``) and the decoder's message. Plain JPEGs keep their bytes (checked by their markers, or decoded with
``--verify``); CMYK, PNG-in-JPEG and other modes are re-encoded to RGB JPEG; ``--resize`` resamples.
It never reads a file: the shard writer does, and never raises anything else for bad bytes.
"""

from imagenet_captions.images.process import ImageError, ImageOptions, process_image, resizer_name

__all__ = ["ImageError", "ImageOptions", "process_image", "resizer_name"]
