"""What became of every input: kept, or dropped with a named reason, counted once.

Every stage of the build yields what it keeps (a record, an image reference, a sample) or a
:class:`Drop`: which input it accounts for (a metadata record or an image entry), the reason, the
key and a detail for the report's examples. :class:`Tally` adds them up where they happen (one per
unit of work: a metadata part, a class folder, a shard), so what crosses the pipeline is a few
small tallies, not one element per dropped input, and the report merges them.

:data:`REASONS` is the catalogue: every reason a report can name, with the stage that names it and
one line of meaning. ``docs/report.md`` is generated from it (``python -m imagenet_captions.outcomes``),
and a test checks that every reason the stages emit is in it. A reason must never be invented
at a call site: add it here first.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, NamedTuple

#: The two inputs a build accounts for: metadata records, and entries of the ImageNet source.
RECORDS, IMAGES = "records", "images"
#: How many (key, detail) examples a report keeps per reason (the smallest keys).
MAX_EXAMPLES = 5


class Drop(NamedTuple):
    """One input that is not in the output: ``category`` is the input it counts against
    (:data:`RECORDS` or :data:`IMAGES`), ``reason`` a name from :data:`REASONS`."""

    category: str
    reason: str
    key: str
    detail: str = ""


@dataclass(frozen=True)
class Reason:
    name: str
    stage: str
    categories: tuple[str, ...]
    meaning: str


_R, _I, _RI = (RECORDS,), (IMAGES,), (RECORDS, IMAGES)

_CATALOGUE = (
    # outcomes that are not drops
    Reason("written", "shards", _R, "the record is in the output, with its image when the build has images"),
    Reason("matched", "shards", _I, "the image was joined to a record, whose own outcome then counts"),
    # sources: the metadata file
    Reason("malformed_record", "sources", _R, "not a JSON object, or a field of the wrong type"),
    Reason("bad_filename", "sources", _R,
           "the record's filename is not an ImageNet image id (<wnid>_<n>.JPEG)"),  # fmt: skip
    Reason("wnid_mismatch", "sources", _R, "the record's wnid differs from the wnid in its filename"),
    Reason("unknown_class", "sources", _RI,
           "a record's wnid or an image's class is not one of the build's classes (--classes)"),  # fmt: skip
    # sources: a harvested Flickr response store
    Reason("flickr_not_found", "flickr", _R, "Flickr answered that the photo no longer exists (code 1)"),
    Reason("flickr_failed", "flickr", _R, "Flickr answered with another error code for the photo"),
    Reason("flickr_gave_up", "flickr", _R, "the harvest gave up on the photo after its retries (no answer)"),
    # sources: the ImageNet folder or tar
    Reason("bad_image_name", "sources", _I,
           "an entry that is not <wnid>_<n>.JPEG of the folder's class (the image-side twin of "
           "bad_filename, kept apart because it counts against the images)"),  # fmt: skip
    Reason("not_a_class_folder", "sources", _I, "an entry outside any <wnid> class folder or class tar"),
    Reason("not_a_file", "sources", _I,
           "a directory, device, pipe or sparse tar member where an image file was expected"),  # fmt: skip
    Reason("link", "sources", _I,
           "a symbolic link (image file or class folder) or a tar's symbolic or hard link member: never "
           "followed, since it can lead outside the ImageNet tree"),  # fmt: skip
    Reason("unsafe_path", "sources", _I, "a tar member whose name is absolute or contains '..'"),
    Reason("corrupt_tar", "sources", _I, "a class tar that cannot be read to its end"),
    # text (filters are off by default)
    Reason("empty_text", "text", _R, "--drop-empty: no title, tags or description left"),
    Reason("camera_filename", "text", _R, "--camera-titles drop: the title is a camera file name"),
    Reason("boilerplate", "text", _R, "--boilerplate drop: the description has boilerplate lines"),
    Reason("machine_tags", "text", _R, "--machine-tags drop: the record has machine tags"),
    Reason("lang_unknown", "text", _R, "--lang-allow: the caption's language could not be identified"),
    Reason("lang_not_allowed", "text", _R, "--lang-allow: the caption is in another language"),
    Reason("lang_low_confidence", "text", _R, "--lang-min-score: the language was identified too weakly"),
    Reason("too_short", "text", _R, "--min-caption-chars: the caption is shorter"),
    Reason("too_long", "text", _R, "--max-caption-chars: the caption is longer"),
    Reason("blocklist", "text", _R, "--blocklist: the caption contains a blocked word or phrase"),
    Reason("owner_duplicate", "text", _R,
           "--owner-duplicates drop: one owner's repeated or near-repeated description"),  # fmt: skip
    # the join in each shard's writer
    Reason("duplicate", "join", _R, "another record with the same key won (chosen by content)"),
    Reason("duplicate_image", "join", _I, "another image file with the same key won (the first path)"),
    Reason("no_image", "join", _R, "the build has images, and none has this record's key"),
    Reason("no_record", "join", _I, "no metadata record has this image's key"),
    Reason("record_dropped", "join", _I, "the image's record was dropped by an earlier stage"),
    # images, in the shard writer
    Reason("corrupt_image", "images", _R, "the image does not decode, is empty or truncated (decoder message)"),
    Reason("too_large", "images", _R, "the image has more pixels than --max-pixels (decompression bomb)"),
    Reason("unsupported_image", "images", _R,
           "the image decodes, but its pixels have no known 8-bit tone scale (floating-point, or "
           "integers beyond 16 bits)"),  # fmt: skip
    Reason("unreadable_image", "images", _R, "the image file could not be read (the OS error)"),
    Reason("image_differs", "images", _R,
           "text-release rebuild: the image's sha256 or size differs from the publisher's"),  # fmt: skip
    # match: class-matched subsets of an image-text corpus (a record is one row of the corpus)
    Reason("no_caption", "match", _R, "the row has no caption, or one that is blank (after cleaning)"),
    Reason("no_class", "match", _R, "no term of any class occurs in the caption"),
    Reason("several_classes", "match", _R, "--multiple drop: the caption names more than one class"),
    Reason("over_quota", "match", _R,
           "balancing: the class already has its target of rows (counted per row and class)"),  # fmt: skip
    Reason("truncated_tar", "match", _R,
           "the webdataset sample at which its tar breaks off (the samples after it cannot be read)"),  # fmt: skip
    Reason("no_image_member", "match", _R, "a webdataset sample without a jpg, jpeg, png or webp member"),
    Reason("caption_not_text", "match", _R, "the caption is there but is not text (a number, bytes not UTF-8)"),
    Reason("bad_json", "match", _R, "a JSON line or a sample's .json member that is not a JSON object"),
    Reason("bad_key", "match", _R, "the --key-column value is missing or empty"),
    Reason("duplicate_key", "match", _R, "an earlier corpus row (by file, then row) has the same key"),
)

REASONS: dict[str, Reason] = {r.name: r for r in _CATALOGUE}


@dataclass
class Tally:
    """Counts of one unit of work (or of the whole build, once merged): entries read per input,
    outcomes per ``(category, reason)``, a few examples per reason, the text stage's statistics
    and the results of the shards written. Mergeable in any order with the same result."""

    inputs: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict)
    text: Any = None  # a text.stats.TextStats, when the text stage ran in this unit
    shards: list[Any] = field(default_factory=list)  # shards.writer.ShardResult

    def drop(self, d: Drop) -> None:
        self.count(d.category, d.reason)
        self._example((d.category, d.reason), (d.key, d.detail))

    def count(self, category: str, name: str, n: int = 1) -> None:
        self.outcomes[(category, name)] += n

    def _example(self, k: tuple[str, str], item: tuple[str, str]) -> None:
        bucket = self.examples.setdefault(k, [])
        if len(bucket) < MAX_EXAMPLES:
            bucket.append(item)
        elif item < max(bucket):
            bucket.remove(max(bucket))
            bucket.append(item)

    def merge(self, other: Tally) -> Tally:
        self.inputs.update(other.inputs)
        self.outcomes.update(other.outcomes)
        for k, items in other.examples.items():
            for item in items:
                self._example(k, item)
        if other.text is not None:
            self.text = other.text if self.text is None else self.text.merge(other.text)
        self.shards.extend(other.shards)
        return self

    def by_category(self, category: str) -> dict[str, int]:
        return dict(sorted((r, n) for (c, r), n in self.outcomes.items() if c == category))

    def examples_of(self) -> dict[str, dict[str, list[dict[str, str]]]]:
        out: dict[str, dict[str, list[dict[str, str]]]] = {}
        for (category, name), items in sorted(self.examples.items()):
            out.setdefault(category, {})[name] = [{"key": k, "detail": d} for k, d in sorted(items)]
        return out


def markdown() -> str:
    """The report's reasons as a Markdown page (``docs/report.md`` is this text)."""
    lines = [
        "# What report.json counts",
        "",
        "Generated from `imagenet_captions.outcomes.REASONS` by `python -m imagenet_captions.outcomes`;",
        "do not edit by hand. Every input record and every entry of the ImageNet source is counted",
        "exactly once in `report.json`: `records.outcomes` and `images.outcomes` sum to their `input`.",
        "",
        "| reason | counted in | stage | meaning |",
        "|---|---|---|---|",
    ]
    for r in _CATALOGUE:
        lines.append(f"| `{r.name}` | {', '.join(r.categories)} | {r.stage} | {r.meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
