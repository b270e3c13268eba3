"""Readers of the build's inputs: metadata sources, and ImageNet's training images (folder or tar).

**The metadata source contract.** ``--metadata KIND:PATH`` names one source, opened by
:func:`open_source` (the one place the kind is dispatched). A source has:

- ``count() -> int``: check the source and count its entries before any pipeline starts (a bad
  file is one clear error, exit 2); the count sizes the shards;
- ``parts(n) -> list``: how its read splits into about ``n`` independent parts (picklable), so the
  records spread over the workers right after the read;
- ``read(part) -> Iterator[RawRecord | Published | Drop]``: every entry of the part, as a raw record
  (:class:`~imagenet_captions.records.RawRecord`: fields already coerced to their types, here and
  only here), a published record (a text release's, with the image its publisher read) or a
  :class:`~imagenet_captions.outcomes.Drop` naming why it is neither;
- ``publisher() -> Publisher | None``: what a text release's publisher fixed (shard count, image
  options, class list), or None for a source of raw records. A source with a publisher reads only
  published records, final as they are: the text stage does not run again, so a newer cleaning
  never changes a rebuild. The build decides this once (``BuildPlan.cleans_text``).

Kinds: ``release:`` the official JSON or zip (:mod:`.release`), ``responses:`` a harvested Flickr
response store (:mod:`.responses`), ``text-release:`` a downloaded text release (:mod:`.text_release`).

**ImageNet's images** (:mod:`.imagenet`) are listed in parts too (class folders or class tars), as
image references or Drops; bytes are read by the shard writer, never carried through a shuffle.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from imagenet_captions.errors import UsageError
from imagenet_captions.outcomes import Drop
from imagenet_captions.records import Published, RawRecord

if TYPE_CHECKING:  # the source that has a publisher builds these; opening any other needs neither
    from imagenet_captions.classes import ClassList
    from imagenet_captions.images import ImageOptions

KINDS = ("release", "responses", "text-release")


@dataclass(frozen=True)
class Publisher:
    """What a text release's publisher fixed, so that a rebuild gives the publisher's bytes: the shard
    count (a key's shard depends on it), the image options, and the class list when it was not
    ILSVRC-2012's (the labels depend on it)."""

    num_shards: int
    image: ImageOptions
    classes: ClassList | None = None


class MetadataSource(Protocol):
    def count(self) -> int: ...

    def parts(self, n: int) -> list[Any]: ...

    def read(self, part: Any) -> Iterator[RawRecord | Published | Drop]: ...

    def publisher(self) -> Publisher | None: ...


def split_spec(spec: str) -> tuple[str, str]:
    """``KIND:PATH`` as ``(kind, path)``, or a UsageError that names the kinds."""
    kind, sep, path = spec.partition(":")
    if not sep or kind not in KINDS or not path:
        raise UsageError(
            f"--metadata must be release:<zip|json>, responses:<dir> or text-release:<dir>, not {spec!r}"
        )
    return kind, path


def open_source(spec: str, as_of: str | None = None) -> MetadataSource:
    """The metadata source ``spec`` names (``--as-of`` applies to a response store only)."""
    kind, path = split_spec(spec)
    if as_of is not None and kind != "responses":
        raise UsageError("--as-of applies to responses:<dir> only")
    if kind == "release":
        from imagenet_captions.sources.release import ReleaseSource

        return ReleaseSource(path)
    if kind == "responses":
        from imagenet_captions.dates import parse_instant
        from imagenet_captions.sources.responses import ResponsesSource

        return ResponsesSource(path, parse_instant(as_of, "--as-of"))
    from imagenet_captions.sources.text_release import TextReleaseSource

    return TextReleaseSource(path)
