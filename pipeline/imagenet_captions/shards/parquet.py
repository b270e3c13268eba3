"""The Parquet format of a shard: one table in, one zstd-compressed file out, hashed as it is written.

Every pipeline that writes a shard's Parquet file (the build's rows of the record schema, ``match``'s
rows) calls :func:`write_parquet`; the settings that decide the file's bytes (compression, pyarrow's
defaults otherwise) live here once. This module knows nothing about records or where rows come from.
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from imagenet_captions.shards.hashfile import HashingFile

#: Bytes pyarrow's many small writes of a Parquet file are gathered into before each ``write``.
PARQUET_BUFFER = 1 << 20


def write_parquet(path: str, table: pa.Table) -> HashingFile:
    """Write ``table`` as the Parquet file ``path``, under a temporary name; returns the closed file,
    its size and sha256 taken as it was written, for the caller to commit with the shard's other
    files. A failure removes the temporary file and raises."""
    out = HashingFile(path)
    try:
        with io.BufferedWriter(out, PARQUET_BUFFER) as f:
            pq.write_table(table, f, compression="zstd")
    except BaseException:
        out.discard()
        raise
    return out
