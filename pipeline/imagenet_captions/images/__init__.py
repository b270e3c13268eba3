"""Image checks and normalisation: the bytes that go into a shard's ``.jpg`` member."""

from imagenet_captions.images.process import ImageError, ImageOptions, process_image, resizer_name

__all__ = ["ImageError", "ImageOptions", "process_image", "resizer_name"]
