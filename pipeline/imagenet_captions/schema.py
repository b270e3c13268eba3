"""The record schema: loaded from ``schemas/caption_record.json``, the one source of truth.

The JSON file lives at the repository's top level (``schemas/``) and is mapped into the wheel as
``imagenet_captions/schemas/`` by the build backend; in a source checkout it is read from the
repository root.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa

SCHEMA_FILE = "caption_record.json"

_TYPES = {
    "string": pa.string(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "list<string>": pa.list_(pa.string()),
}


def _schema_text(name: str) -> str:
    packaged = resources.files("imagenet_captions").joinpath("schemas", name)
    if packaged.is_file():
        return packaged.read_text()
    source_tree = Path(__file__).resolve().parents[2] / "schemas" / name
    if source_tree.is_file():
        return source_tree.read_text()
    raise FileNotFoundError(f"schema {name} is neither in the package nor in the source tree")


@functools.cache
def schema_spec(name: str = SCHEMA_FILE) -> dict[str, Any]:
    return json.loads(_schema_text(name))


@functools.cache
def arrow_schema(name: str = SCHEMA_FILE) -> pa.Schema:
    spec = schema_spec(name)
    return pa.schema(
        [
            pa.field(f["name"], _TYPES[f["type"]], nullable=f["nullable"], metadata={"doc": f["doc"]})
            for f in spec["fields"]
        ],
        metadata={"name": spec["name"], "version": str(spec["version"])},
    )


def column_names(name: str = SCHEMA_FILE) -> list[str]:
    return [f["name"] for f in schema_spec(name)["fields"]]


def to_table(rows: Sequence[Mapping[str, Any]], name: str = SCHEMA_FILE) -> pa.Table:
    """Rows (dicts with at least the non-nullable columns) as a table of the schema; extra keys are an error."""
    names = column_names(name)
    extra = {k for r in rows for k in r} - set(names)
    if extra:
        raise ValueError(f"columns not in schema {name}: {sorted(extra)}")
    columns = {n: [r.get(n) for r in rows] for n in names}
    return pa.Table.from_pydict(columns, schema=arrow_schema(name))
