"""``croissant.json`` is valid Croissant 1.1 (mlcroissant, no warnings) and reads back as the Parquet rows."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imagenet_captions import manifest as mf
from imagenet_captions.release import croissant

mlc = pytest.importorskip("mlcroissant")


def _plain(value: Any) -> Any:
    """mlcroissant's values (bytes for Text, numpy scalars, NaN for a null number) as Parquet's."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _parquet_rows(release: Path) -> list[dict[str, Any]]:
    return (
        pq.ParquetDataset(sorted(str(p) for p in (release / "captions").glob("*.parquet"))).read().to_pylist()
    )


@pytest.mark.parametrize("which", ["text_release", "image_release"])
def test_croissant_validates_without_warnings_and_reads_back(which, request):
    release: Path = request.getfixturevalue(which)
    dataset = mlc.Dataset(jsonld=str(release / "croissant.json"))
    issues = dataset.metadata.ctx.issues
    assert not issues.errors and not issues.warnings, issues.report()
    assert dataset.metadata.ctx.conforms_to.value == croissant.CONFORMS_TO

    rows = _parquet_rows(release)
    prefix = f"{croissant.RECORD_SET}/"
    records = [
        {k.removeprefix(prefix): _plain(v) for k, v in r.items()}
        for r in dataset.records(record_set=croissant.RECORD_SET)
    ]
    assert len(records) == len(rows)
    by_key = {r["key"]: r for r in records}
    for row in rows:
        got = by_key[row["key"]]
        assert set(got) == set(row)  # every column is a field, and nothing else
        for column, value in row.items():
            if isinstance(value, float):
                assert got[column] == pytest.approx(value, rel=1e-6), column
            else:
                assert got[column] == value, (row["key"], column)


def test_every_published_file_is_a_file_object_with_its_sha256(image_release, release_date):
    doc = json.loads((image_release / "croissant.json").read_text())
    m = mf.read_manifest(str(image_release))
    objects = {d["contentUrl"]: d for d in doc["distribution"] if d["@type"] == "cr:FileObject"}
    data_files = {f["path"]: f for f in m["files"] if f["path"].startswith(("captions/", "shards/0"))}
    assert set(objects) == set(data_files)
    for path, obj in objects.items():
        assert (
            obj["sha256"]
            == data_files[path]["sha256"]
            == hashlib.sha256((image_release / path).read_bytes()).hexdigest()
        )
        assert obj["encodingFormat"] == (
            croissant.TAR_FORMAT if path.endswith(".tar") else croissant.PARQUET_FORMAT
        )
    (file_set,) = [d for d in doc["distribution"] if d["@type"] == "cr:FileSet"]
    assert (file_set["includes"], file_set["encodingFormat"]) == (
        "captions/*.parquet",
        "application/x-parquet",
    )
    assert doc["conformsTo"] == "http://mlcommons.org/croissant/1.1"
    assert (doc["version"], doc["datePublished"]) == (m["version"], release_date)
    assert "Fang" in doc["citeAs"] and doc["license"] and doc["url"].startswith("https://")


def test_context_is_mlcroissants_own():
    """A context that differs from the standard one draws a warning in every reader."""
    from mlcroissant._src.core.context import Context, CroissantVersion
    from mlcroissant._src.core.rdf import make_context

    assert make_context(Context(conforms_to=CroissantVersion.V_1_1)) == croissant.CONTEXT


def test_data_types_follow_the_parquet_columns():
    assert croissant.data_type(pa.string()) == ("sc:Text", False)
    assert croissant.data_type(pa.int16()) == ("cr:Int16", False)
    assert croissant.data_type(pa.float64()) == ("cr:Float64", False)
    assert croissant.data_type(pa.list_(pa.string())) == ("sc:Text", True)
    with pytest.raises(ValueError, match="no Croissant dataType"):
        croissant.data_type(pa.binary())


def test_new_schema_columns_become_fields(tmp_path):
    """Columns the record schema gains (image_sha256, image_size; lang_score as float64) need no change here."""
    from imagenet_captions.release.publish import field_docs

    schema = pa.schema(
        [
            pa.field("key", pa.string(), nullable=False),
            pa.field("tags", pa.list_(pa.string()), nullable=False),
            pa.field("lang_score", pa.float64()),
            pa.field("image_sha256", pa.string(), metadata={"doc": "sha256 of the source image file"}),
            pa.field("image_size", pa.int64()),
        ]
    )
    entry = {"sha256": "0" * 64, "size": 1}
    manifest = {
        "name": "x",
        "version": "1.0.0",
        "shards": {
            "00000": {"samples": 1, "parquet": {"path": "captions/00000.parquet", **entry}, "tar": None}
        },
    }
    doc = croissant.croissant_metadata(
        manifest, schema, field_docs(schema), "d", "2026-01-01", "https://x.org"
    )
    fields = {f["name"]: f for f in doc["recordSet"][0]["field"]}
    assert list(fields) == schema.names
    assert (fields["lang_score"]["dataType"], fields["image_size"]["dataType"]) == ("cr:Float64", "cr:Int64")
    assert fields["image_sha256"]["description"] == "sha256 of the source image file"
    assert fields["tags"]["isArray"] is True and "isArray" not in fields["key"]
    path = tmp_path / "croissant.json"
    path.write_text(json.dumps(doc))
    (tmp_path / "captions").mkdir()
    pq.write_table(
        pa.table(
            {
                "key": ["n01440764_1"],
                "tags": [["a"]],
                "lang_score": [0.5],
                "image_sha256": [None],
                "image_size": [None],
            },
            schema=schema,
        ),
        tmp_path / "captions" / "00000.parquet",
    )
    dataset = mlc.Dataset(jsonld=str(path))
    assert not dataset.metadata.ctx.issues.warnings
    (record,) = [
        {k.split("/", 1)[1]: _plain(v) for k, v in r.items()} for r in dataset.records(record_set="captions")
    ]
    assert record == {
        "key": "n01440764_1",
        "tags": ["a"],
        "lang_score": 0.5,
        "image_sha256": None,
        "image_size": None,
    }
