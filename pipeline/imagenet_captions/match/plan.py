"""What a ``match`` run will do, decided once before any pipeline runs: its config, then its plan.

:class:`MatchConfig` is the command line's options, validated once (a bad value is an
``OptionError``: one line, exit 2). :func:`make_plan` opens and checks the corpus (a corpus that is
unusable as a whole is one line before anything is written), loads the vocabulary, the targets of
balancing, fixes the output shard count (recorded in the manifest: a rerun keeps it), reads what
the last run recorded for each shard, and plans the parts. The frozen :class:`MatchPlan` is the one
value every unit of work is given, as ``build``'s ``BuildPlan`` is.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from imagenet_captions import __version__, fsio
from imagenet_captions.errors import OptionError, UsageError
from imagenet_captions.match.corpora import Corpus, ReadOptions, split_corpus
from imagenet_captions.match.options import MatchRule
from imagenet_captions.match.readers import open_corpus
from imagenet_captions.match.vocabulary import Vocabulary, load_vocabulary
from imagenet_captions.options import as_int
from imagenet_captions.shards import incremental

MATCHES_DIR = "matches"
SHARDS_DIR = "shards"
#: Where each part leaves its matched rows for the shard writers (removed when the run finishes).
SPILL_DIR = ".spill"
#: Parts per worker the corpus is split into: a few, so a slow part does not hold the rest.
PARTS_PER_WORKER = 2
#: Corpus rows per output shard when the count is derived: a Parquet shard of a metadata corpus
#: holds a few hundred thousand matches; an image corpus's tar a few tens of thousands of images.
SHARD_ROWS = {"webdataset": 100_000}
DEFAULT_SHARD_ROWS = 1_000_000
#: Rows assumed per corpus file when a kind cannot count them before reading (for the shard count
#: only): img2dataset's samples per tar; a JSON line of a caption corpus is about this many bytes.
ROWS_PER_TAR = 10_000
BYTES_PER_JSON_LINE = 200
MAX_SHARDS = 1_000_000


@dataclass(frozen=True)
class MatchConfig:
    """Everything a match run depends on. Equal configs over equal corpora give byte-identical outputs."""

    corpus: str
    out: str
    read: ReadOptions = field(default_factory=ReadOptions)
    rule: MatchRule = field(default_factory=MatchRule)
    names: str = "wordnet"
    classes: str = "ilsvrc2012"
    unique_terms: bool = False
    exclude_terms: str | None = None
    balance_to: str | None = None
    max_per_class: int | None = None
    seed: int = 0
    num_shards: int | None = None
    shard_rows: int | None = None

    def __post_init__(self) -> None:
        split_corpus(self.corpus)
        if not isinstance(self.out, str) or not self.out:
            raise OptionError(f"--out must be a folder, not {self.out!r}")
        as_int("--seed", self.seed)
        if self.max_per_class is not None:
            as_int("--max-per-class", self.max_per_class, minimum=0)
        if self.num_shards is not None:
            as_int("--num-shards", self.num_shards, minimum=1, maximum=MAX_SHARDS)
        if self.shard_rows is not None:
            as_int("--shard-rows", self.shard_rows, minimum=1)
        if self.balance_to is not None and (not isinstance(self.balance_to, str) or not self.balance_to):
            raise OptionError(f"--balance-to must be imagenet-captions or a file, not {self.balance_to!r}")
        if len(set(self.read.keep_columns)) != len(self.read.keep_columns):
            raise OptionError("--keep-column names a column twice")

    @property
    def balancing(self) -> bool:
        return self.balance_to is not None or self.max_per_class is not None


@dataclass(frozen=True)
class MatchPlan:
    """A run decided: the corpus and its parts, the vocabulary, the targets, the shards."""

    config: MatchConfig
    corpus: Corpus
    vocabulary: Vocabulary
    targets: dict[str, int] | None
    num_shards: int
    previous: dict[str, dict[str, Any]]
    parts: list[Any]
    schema: pa.Schema
    output_options: dict[str, Any]
    started: float

    @property
    def out(self) -> str:
        return self.config.out

    @property
    def with_images(self) -> bool:
        return self.corpus.with_images

    def spill_path(self, index: int) -> str:
        return fsio.join(self.config.out, SPILL_DIR, f"part-{index:06d}.arrow")


def output_schema(corpus: Corpus) -> pa.Schema:
    """The columns of a matched row, in order: ours, then the corpus's (URL, kept columns, and the
    image reference of a webdataset corpus, which the writer reads and never writes)."""
    ours = [
        pa.field("key", pa.string()),
        pa.field("caption", pa.string()),
        pa.field("wnid", pa.string()),
        pa.field("label", pa.int32()),
        pa.field("terms", pa.list_(pa.string())),
    ]
    return pa.schema([*ours, *corpus.schema, pa.field("__pos", pa.int64())])


def make_plan(config: MatchConfig, workers: int = 1) -> MatchPlan:
    """Check the inputs and plan the run (see the module docstring)."""
    from imagenet_captions.match.balance import targets_from

    started = time.time()
    corpus = open_corpus(config.corpus, config.read)
    vocabulary = load_vocabulary(config.names, config.classes, config.unique_terms, config.exclude_terms)
    targets = None
    if config.balancing:
        targets = targets_from(config.balance_to, vocabulary.classes, config.max_per_class)
    recorded, previous = incremental.recorded_shards(config.out)
    num_shards = _num_shards(config, corpus, recorded)
    schema = output_schema(corpus)
    options = {
        "corpus": corpus.kind,
        "read": asdict(config.read),
        "rule": config.rule.to_manifest(),
        "vocabulary": vocabulary.to_manifest(),
        "balance": None
        if targets is None
        else {
            "to": config.balance_to,
            "max_per_class": config.max_per_class,
            "seed": config.seed,
            "targets": _digest(targets),
        },  # fmt: skip
        "schema": schema.to_string(show_schema_metadata=False),
        "version": __version__,
    }
    if corpus.with_images:  # the tars' bytes come from the corpus files: any change rewrites them
        options["images"] = [[fsio.basename(f.path), f.size, f.mtime_ns] for f in corpus.files]
    return MatchPlan(
        config=config,
        corpus=corpus,
        vocabulary=vocabulary,
        targets=targets,
        num_shards=num_shards,
        previous=previous,
        parts=corpus.parts(1 if workers <= 1 else PARTS_PER_WORKER * workers),
        schema=schema,
        output_options=json.loads(json.dumps(options)),
        started=started,
    )


def _digest(targets: dict[str, int]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(sorted(targets.items())).encode()).hexdigest()


def estimated_rows(corpus: Corpus) -> int:
    """The corpus's rows, counted when the kind can, else estimated (for the shard count only)."""
    rows = corpus.rows()
    if rows is not None:
        return rows
    if corpus.kind == "webdataset":
        return ROWS_PER_TAR * len(corpus.files)
    return sum(f.size for f in corpus.files) // BYTES_PER_JSON_LINE


def _num_shards(config: MatchConfig, corpus: Corpus, recorded: int | None) -> int:
    """The shard count: fixed by the first run into an output (recorded), else asked, else derived."""
    if config.num_shards is not None:
        if recorded is not None and recorded != config.num_shards:
            raise UsageError(
                f"{config.out} was matched into {recorded} shards; --num-shards {config.num_shards} would "
                "move every key: use a new --out"
            )
        return config.num_shards
    if recorded is not None:
        return recorded
    per_shard = config.shard_rows or SHARD_ROWS.get(corpus.kind, DEFAULT_SHARD_ROWS)
    return max(1, min(MAX_SHARDS, math.ceil(estimated_rows(corpus) / per_shard)))
