"""The corpora ``match`` reads: ``--corpus KIND:PATH``, opened once, read in parts, as batches.

A corpus is checked before anything is written (``readers.open_corpus``): what makes the whole corpus
unusable (an unknown kind, a path or glob that matches nothing, a file without the caption column,
a corrupt Parquet footer, two files whose generated keys would collide) is a ``UsageError``, one
line and exit 2. What spoils one entry is a :class:`~imagenet_captions.outcomes.Drop` of that entry,
counted in the report (``truncated_tar``, ``no_image_member``, ``caption_not_text``, ``bad_json``,
``bad_key``).

The unit a reader hands on is a :class:`Batch`, a few thousand rows: Beam's per-element cost is a
few microseconds, a row's whole budget, so rows never travel one by one. Each kind lives in its own
module (``corpus_parquet``, ``corpus_jsonl``, ``corpus_webdataset``, ``corpus_release``); this one
holds what they share (the spec, the file listing, the key rules, the batch); ``readers.open_corpus``
dispatches a spec to its reader.
A reader never matches, never writes and never keeps more than one batch of rows in memory.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import pyarrow as pa

from imagenet_captions import fsio
from imagenet_captions.errors import UsageError
from imagenet_captions.outcomes import Drop

KINDS = ("parquet", "webdataset", "jsonl", "release", "text-release")
#: The caption column when ``--text-column`` is not given: the first of these a file has.
TEXT_COLUMNS = ("caption", "TEXT", "text", "txt")
#: The URL column when ``--url-column`` is not given: the first of these a file has.
URL_COLUMNS = ("url", "URL")
#: The files of a kind, when the path is a folder.
SUFFIXES = {"parquet": (".parquet",), "webdataset": (".tar",), "jsonl": (".jsonl", ".jsonl.gz", ".json")}
#: Rows a reader puts in one batch: large enough that the per-batch costs (an Arrow slice, one
#: automaton pass per 1,024 captions, one element) vanish, small enough to stay in cache.
BATCH_ROWS = 8192
_UNSAFE_STEM = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class CorpusFile:
    """One file of the corpus: where it is, its bytes, and its rows when the plan could count them."""

    path: str
    size: int
    rows: int | None = None
    mtime_ns: int | None = None


@dataclass(frozen=True)
class ReadOptions:
    """Which fields a reader takes (``--text-column``, ``--url-column``, ``--key-column``,
    ``--keep-column``); None means the kind's default."""

    text_column: str | None = None
    url_column: str | None = None
    key_column: str | None = None
    keep_columns: tuple[str, ...] = ()


@dataclass
class Batch:
    """Rows of one corpus file read together.

    ``captions[i]`` is row ``i``'s caption (None: missing); its key is ``keys[i]``, or, when the
    corpus has no keys, ``key_prefix`` and its row index (``first_row + i``, or ``index[i]`` where
    unreadable rows left gaps) in 9 digits. ``columns`` holds the row's other output columns (URL,
    kept columns, image reference), aligned with ``captions``; ``labels`` the wnid each row is
    known to have (release kinds only). ``drops`` are rows of this batch that could not be read as
    a row with a caption: they count as read, and are accounted for under their reason."""

    file: int
    captions: list[str | None]
    columns: pa.Table
    first_row: int = 0
    keys: list[str] | None = None
    key_prefix: str = ""
    index: list[int] | None = None
    labels: list[str] | None = None
    drops: list[Drop] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Corpus rows this batch accounts for."""
        return len(self.captions) + len(self.drops)

    def row_index(self, i: int) -> int:
        return self.index[i] if self.index is not None else self.first_row + i

    def key(self, i: int) -> str:
        if self.keys is not None:
            return self.keys[i]
        return f"{self.key_prefix}{self.row_index(i):09d}"

    def keys_of(self, rows: Sequence[int]) -> list[str]:
        if self.keys is not None:
            keys = self.keys
            return [keys[i] for i in rows]
        prefix = self.key_prefix
        if self.index is not None:
            index = self.index
            return [f"{prefix}{index[i]:09d}" for i in rows]
        first = self.first_row
        return [f"{prefix}{first + i:09d}" for i in rows]

    @property
    def keys_in_order(self) -> bool:
        """Whether the keys rise with the row (generated keys): the smallest are the first ones."""
        return self.keys is None


class FileDigest(NamedTuple):
    """What a reader that reads a whole file yields after its last batch: the file's sha256 and size,
    hashed as it was read (the report lists every corpus file with them)."""

    file: int
    sha256: str
    size: int


class Corpus(Protocol):
    """What the plan and the units of work need of a corpus (see the module docstring)."""

    kind: str
    files: tuple[CorpusFile, ...]
    #: the output columns a row carries besides key, caption, wnid, label and terms
    schema: pa.Schema
    #: True when each row's class is known (release kinds): the report then compares
    labelled: bool
    #: True when rows carry image references (webdataset): the output gets tars
    with_images: bool
    #: True when ``read`` reads whole files and yields a :class:`FileDigest` for each; else the
    #: files are hashed by units of their own
    hashes_in_read: bool

    def rows(self) -> int | None:
        """The corpus's row count when the plan knows it (Parquet footers, a release), else None."""
        ...

    def parts(self, n: int) -> list[Any]: ...

    def read(self, part: Any) -> Iterator[Batch | FileDigest]: ...


def split_corpus(spec: str) -> tuple[str, str]:
    """``KIND:PATH`` as ``(kind, path)``, or one line naming the kinds."""
    kind, sep, path = spec.partition(":")
    if not sep or kind not in KINDS or not path:
        raise UsageError(f"--corpus must be KIND:PATH with KIND one of {', '.join(KINDS)}, not {spec!r}")
    return kind, path


def sanitize_stem(name: str) -> str:
    """A file's name without its extensions, every character outside ``[A-Za-z0-9_-]`` as ``_``:
    the start of the keys of its rows (``<stem>_<row index, 9 digits>``), as img2dataset names them."""
    base = fsio.basename(name)
    for suffix in (".gz", ".jsonl", ".json", ".parquet", ".tar"):
        base = base.removesuffix(suffix)
    return _UNSAFE_STEM.sub("_", base)


def list_files(path: str, kind: str) -> list[CorpusFile]:
    """The files ``path`` names: one file, a folder's files of the kind, or a glob; sorted by path."""
    if fsio.is_remote(path):
        paths = _match_remote(path, kind)
    elif any(c in path for c in "*?["):
        paths = sorted(p for p in glob.glob(path) if os.path.isfile(p))
    elif os.path.isdir(path):
        paths = sorted(
            os.path.join(path, n) for n in os.listdir(path) if n.endswith(SUFFIXES.get(kind, ("",)))
        )
        paths = [p for p in paths if os.path.isfile(p)]
    else:
        paths = [path] if os.path.isfile(path) else []
    if not paths:
        raise UsageError(f"--corpus {kind}:{path} matches no file")
    files = []
    for p in paths:
        if fsio.is_remote(p):
            files.append(CorpusFile(p, fsio.size(p) or 0))
        else:
            st = os.stat(p)
            files.append(CorpusFile(p, st.st_size, mtime_ns=st.st_mtime_ns))
    return files


def _match_remote(path: str, kind: str) -> list[str]:
    from apache_beam.io.filesystems import FileSystems

    pattern = path
    if not any(c in path for c in "*?[") and not FileSystems.exists(path):
        pattern = path.rstrip("/") + "/*"  # a prefix: the "folder's" files
    (result,) = FileSystems.match([pattern])
    found = sorted(m.path for m in result.metadata_list)
    if pattern != path:
        found = [p for p in found if p.endswith(SUFFIXES.get(kind, ("",)))]
    return found


#: Names the output gives its own columns: a kept column may not take one.
OUTPUT_COLUMNS = ("key", "caption", "wnid", "label", "terms", "url")


def check_keep_columns(keep: Sequence[str], also: Sequence[str | None] = ()) -> None:
    """A ``--keep-column`` may not shadow an output column (or a reader's own, ``also``): one line."""
    clash = [c for c in keep if c in OUTPUT_COLUMNS or c in also]
    if clash:
        raise UsageError(f"--keep-column {clash[0]}: the output has its own {clash[0]} column")


def check_stems(files: Sequence[CorpusFile], kind: str) -> None:
    """Generated keys are ``<stem>_<row>``: two files of one stem would give two rows one key."""
    seen: dict[str, str] = {}
    for f in files:
        stem = sanitize_stem(f.path)
        if stem in seen:
            raise UsageError(
                f"--corpus: {seen[stem]} and {f.path} would give their rows the same keys ({stem}_<row>): "
                "give --key-column, or rename one"
            )
        seen[stem] = f.path


def json_value(value: Any) -> str | None:
    """A kept field of a JSON row as a string cell: a string as it is, null as null, anything else
    as its JSON text (a JSON field has no type the whole corpus agrees on)."""
    if value is None or isinstance(value, str):
        return value
    import orjson

    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return repr(value)
