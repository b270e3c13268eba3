"""What a build will do, decided once before any pipeline runs: its config, then its plan.

:class:`BuildConfig` is the command line's options (validated once, a bad value is a UsageError);
:func:`make_plan` checks the inputs, counts the metadata, fixes the shard count (recorded in the
manifest: a rerun keeps it), reads what the last build recorded for each shard, and plans the parts
the workers will read and list. The :class:`BuildPlan` it returns is the one value every stage of
the graph is given, instead of a handful of arguments each.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from imagenet_captions import __version__, classes, fsio, layout
from imagenet_captions.classes import ClassList
from imagenet_captions.errors import OptionError, UsageError
from imagenet_captions.images import ImageOptions, resizer_name
from imagenet_captions.shards import incremental
from imagenet_captions.sources import MetadataSource, Publisher, imagenet, open_source, split_spec
from imagenet_captions.text import TextOptions

#: Parts per worker the metadata read is split into: a few, so a slow part does not hold the rest.
PARTS_PER_WORKER = 2
#: The most shards ``--num-shards`` may ask for. More shards than records is allowed (empty shards are
#: part of the format), but every planned shard is a seed, a task and two files: a count in the
#: hundreds of millions planned for many minutes and ran out of memory before writing anything.
MAX_SHARDS = 1_000_000


@dataclass(frozen=True)
class BuildConfig:
    """Everything a build depends on. Equal configs over equal inputs give byte-identical shards."""

    metadata: str  # "release:<zip|json>", "responses:<dir>" or "text-release:<dir>"
    out: str
    imagenet: str | None = None
    num_shards: int | None = None
    shard_size: int = 2000
    min_shards: int = 8
    as_of: str | None = None
    image: ImageOptions = field(default_factory=ImageOptions)
    text: TextOptions = field(default_factory=TextOptions)
    classes: str = "ilsvrc2012"  # "ilsvrc2012", "all" (every wnid of the ImageNet source) or a file

    def __post_init__(self) -> None:
        split_spec(self.metadata)
        if self.num_shards is not None and self.num_shards < 1:
            raise UsageError(f"--num-shards must be at least 1, not {self.num_shards}")
        if self.num_shards is not None and self.num_shards > MAX_SHARDS:
            raise OptionError(f"--num-shards must be at most {MAX_SHARDS:,}, not {self.num_shards:,}")
        if self.shard_size < 1:
            raise UsageError(f"--shard-size must be at least 1, not {self.shard_size}")
        if self.min_shards < 1:
            raise UsageError(f"--min-shards must be at least 1, not {self.min_shards}")
        if self.classes == "all" and self.imagenet is None:
            raise UsageError("--classes all takes the classes of --imagenet: give --imagenet, or a class file")

    def output_options(self, image: ImageOptions, class_list: ClassList) -> dict[str, Any]:
        """What decides the bytes of a shard besides its inputs (part of each shard's input digest): the
        options and the tool's version, so an upgrade that changes outputs rewrites every shard."""
        options = {
            "image": asdict(image),
            # Resized bytes depend on the resampler's code too (SIMD or Pillow): a switch rewrites them.
            "resizer": resizer_name() if image.resize else None,
            "text": json.loads(json.dumps(asdict(self.text), default=str)),
            "schema": "caption_record/v1",
            "version": __version__,
        }
        if not class_list.is_ilsvrc:
            options["classes"] = class_list.to_manifest()
        return options


@dataclass(frozen=True)
class BuildPlan:
    """A build decided: where shards go, how many, what the last build recorded, the parts to read.

    Each case is decided here once and read by name: the graph and the units of work ask
    :attr:`cleans_text`, :attr:`dedupes_owners` and :attr:`with_images`, never the source or the
    options again."""

    config: BuildConfig
    source: MetadataSource
    #: what a text release's publisher fixed (its records are final), or None
    publisher: Publisher | None
    input_records: int
    shard_dir: str
    num_shards: int
    previous: dict[str, dict[str, Any]]
    classes: ClassList
    image: ImageOptions
    output_options: dict[str, Any]
    read_parts: list[Any]
    listing_parts: list[imagenet.ListingPart]
    started: float

    @property
    def with_images(self) -> bool:
        return self.config.imagenet is not None

    @property
    def cleans_text(self) -> bool:
        """Whether the text stage runs: not on a text release, whose records its publisher cleaned
        (a newer cleaning must never change a rebuild)."""
        return self.publisher is None

    @property
    def dedupes_owners(self) -> bool:
        """Whether each owner's repeated descriptions are settled (``--owner-duplicates``), which
        groups the cleaned records by owner before they are finished."""
        return self.cleans_text and self.config.text.owner_duplicates != "keep"


def make_plan(config: BuildConfig, workers: int = 1) -> BuildPlan:
    """Check the inputs, count the metadata and plan the build (see the module docstring)."""
    started = time.time()
    if config.imagenet is not None and not fsio.exists(config.imagenet):
        raise UsageError(f"--imagenet: ImageNet source not found: {config.imagenet}")
    try:
        source = open_source(config.metadata, config.as_of)
        input_records = source.count()
    except UsageError as e:
        message = str(e)
        raise UsageError(message if message.startswith("--") else f"--metadata: {message}") from None
    with_images = config.imagenet is not None
    shard_dir = fsio.join(config.out, layout.SHARD_DIR if with_images else layout.CAPTIONS_DIR)
    recorded, previous = incremental.recorded_shards(shard_dir)
    image, wanted = config.image, config.num_shards
    publisher = source.publisher()
    if publisher is not None:  # a text release: its publisher's shard count and image options, its bytes
        image = publisher.image
        if config.image != ImageOptions() and config.image != image:
            raise UsageError("a text-release rebuild uses the publisher's image options: drop --resize and the like")
        wanted = publisher.num_shards
        if config.num_shards not in (None, wanted):
            raise UsageError(f"the release has {wanted} shards; --num-shards {config.num_shards} would move keys")
    num_shards = _num_shards(wanted, recorded, input_records, config, shard_dir)
    class_list = _class_list(config)
    if publisher is not None and publisher.classes is not None:  # the publisher's labels
        class_list = publisher.classes
    listing = imagenet.plan_listing(config.imagenet, class_list) if config.imagenet is not None else []
    return BuildPlan(
        config=config,
        source=source,
        publisher=publisher,
        input_records=input_records,
        shard_dir=shard_dir,
        num_shards=num_shards,
        previous=previous,
        classes=class_list,
        image=image,
        output_options=config.output_options(image, class_list),
        read_parts=source.parts(1 if workers <= 1 else PARTS_PER_WORKER * workers),
        listing_parts=listing,
        started=started,
    )


def _num_shards(
    wanted: int | None, recorded: int | None, input_records: int, config: BuildConfig, shard_dir: str
) -> int:
    """The shard count: fixed by the first build of an output (recorded), else asked, else derived."""
    if wanted is not None:
        if recorded is not None and recorded != wanted:
            raise UsageError(
                f"{shard_dir} was built with {recorded} shards; --num-shards {wanted} would move every "
                "key: use a new --out"
            )
        return wanted
    if recorded is not None:
        return recorded
    return layout.derive_num_shards(input_records, config.shard_size, config.min_shards)


def _class_list(config: BuildConfig) -> ClassList:
    if config.classes == "ilsvrc2012":
        return classes.ilsvrc2012()
    if config.classes == "all":
        assert config.imagenet is not None  # BuildConfig refuses --classes all without --imagenet
        return ClassList(imagenet.source_wnids(config.imagenet), "all")
    return classes.read_class_file(config.classes)
