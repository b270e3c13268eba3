"""The files of one ``match`` shard: ``matches/NNNNN.parquet`` and, for a webdataset corpus,
``shards/NNNNN.tar`` in the layout ``build`` writes, both complete or absent.

The rows arrive settled and sorted (``work.write_one_shard``); this module only writes them. Each
file is written under a temporary name with its sha256 taken on the way out
(:class:`~imagenet_captions.shards.hashfile.HashingFile`), and the files take their final names
together once all are complete, the tar last. The tar's image bytes are read here, from the corpus
tar at the offset and size the reader recorded, and copied as they came: never decoded, never
carried through a shuffle. Its members are written by the shard package's tar writer, so a match
shard is read by every loader that reads a build's shards (``train --shards`` included).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from imagenet_captions import fsio
from imagenet_captions.errors import UsageError
from imagenet_captions.match.corpus_webdataset import IMAGE_REF_COLUMNS
from imagenet_captions.shards.hashfile import HashingFile, commit_all, discard_all
from imagenet_captions.shards.outputs import naming_output

if TYPE_CHECKING:
    from imagenet_captions.shards.tar import TarSample

#: Bytes pyarrow's many small writes of a Parquet file are gathered into before each ``write``.
PARQUET_BUFFER = 1 << 20
#: Columns a shard's rows carry to the writer that the Parquet file does not hold.
HIDDEN = ("__pos", *IMAGE_REF_COLUMNS)


class CorpusChanged(UsageError):
    """A corpus tar changed between the match and the shard's write: one line, not a traceback
    (``_tagged_with_step``: Beam re-raises it unchanged, as :class:`~imagenet_captions.shards.outputs.OutputError`)."""

    _tagged_with_step = True


def visible(table: pa.Table) -> pa.Table:
    """The columns the Parquet file holds (not the position, nor the image reference)."""
    return table.drop_columns([c for c in HIDDEN if c in table.column_names])


def write_shard_files(
    plan: Any, index: int, table: pa.Table, files: list[str], digest: str
) -> dict[str, Any]:
    """Write the shard's files (``files``: paths relative to ``--out``) and return its manifest entry."""
    out = plan.out
    if fsio.is_remote(out):
        with tempfile.TemporaryDirectory(prefix="imagenet-captions-match-") as local:
            entry = _write_local(plan, local, table, files)
            for name in files:
                target = fsio.join(out, name)
                with (
                    open(os.path.join(local, name), "rb") as src,
                    naming_output(target),
                    fsio.atomic_write(target) as dst,
                ):
                    shutil.copyfileobj(src, dst, 1 << 22)
    else:
        entry = _write_local(plan, out, table, files)
    return {"index": index, "written": table.num_rows, "dropped": [], "digest": digest, **entry}


def _write_local(plan: Any, out: str, table: pa.Table, files: list[str]) -> dict[str, Any]:
    written: list[HashingFile] = []
    try:
        with naming_output(os.path.join(out, files[0])):
            for name in files:
                os.makedirs(os.path.dirname(os.path.join(out, name)), exist_ok=True)
            parquet = HashingFile(os.path.join(out, files[0]))
            written.append(parquet)
            with io.BufferedWriter(parquet, PARQUET_BUFFER) as f:
                pq.write_table(visible(table), f, compression="zstd")
        if len(files) > 1:
            from imagenet_captions.shards.tar import write_tar

            with naming_output(os.path.join(out, files[1])):
                written.append(write_tar(os.path.join(out, files[1]), samples(plan, table)))
        with naming_output(os.path.join(out, files[0])):
            commit_all(written)
    except BaseException:
        discard_all(written)
        raise
    return {
        "files": list(files),
        "sizes": {name: f.size for name, f in zip(files, written, strict=True)},
        "sha256": {name: f.sha256 for name, f in zip(files, written, strict=True)},
    }


def sample_key(key: str, wnid: str, multiple: str) -> str:
    """A sample's key in the tar: the row's key, or with ``--multiple all`` (one sample per class a
    caption names) the key and the wnid, so no two samples share one."""
    return key if multiple == "drop" else f"{key}_{wnid}"


def samples(plan: Any, table: pa.Table) -> Iterator[TarSample]:
    """The shard's samples, in its row order, each image read as its turn comes: the image as it came
    (``jpg`` for a JPEG, else its own extension), the caption (``txt``), the row's fields (``json``)
    and the label (``cls``), the order ``build`` writes them in."""
    from imagenet_captions.shards.tar import TarSample, to_json_bytes

    multiple = plan.config.rule.multiple
    fields = [c for c in visible(table).column_names if c not in ("caption", "label")]
    sources: dict[int, IO[bytes]] = {}
    try:
        for row in table.to_pylist():
            fi = row["__image_file"]
            src = sources.get(fi)
            if src is None:
                src = sources[fi] = fsio.open_read(plan.corpus.files[fi].path)
            src.seek(row["__image_offset"])
            data = src.read(row["__image_size"])
            if len(data) != row["__image_size"]:
                raise CorpusChanged(
                    f"{plan.corpus.files[fi].path} changed during the run: an image is cut short"
                )
            ext = "jpg" if row["__image_ext"] in ("jpg", "jpeg") else row["__image_ext"]
            members = {
                ext: data,
                "txt": row["caption"].encode("utf-8"),
                "json": to_json_bytes({c: row[c] for c in fields}),
                "cls": str(row["label"]).encode(),
            }
            yield TarSample(sample_key(row["key"], row["wnid"], multiple), members)
    finally:
        for src in sources.values():
            src.close()
