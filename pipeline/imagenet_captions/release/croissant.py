"""``croissant.json``: the release described in Croissant 1.1 (MLCommons' JSON-LD for ML datasets).

One FileObject per published file (Parquet, and the tars when published) carries its sha256; a
FileSet (``captions/*.parquet``) gathers the Parquet files, and the ``captions`` RecordSet reads one
Field per Parquet column from it. The FileSet has no ``containedIn``: its glob is resolved against
the folder holding ``croissant.json``, the release root, so the description works from a local copy
as from the host. The column types come from the Parquet files themselves (whose schema is the
project's record schema), so a column added to the schema appears here without a change.

It must not depend on ``mlcroissant`` (a test dependency that validates and reads it back): the
release command runs where only the pipeline is installed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pyarrow as pa

from imagenet_captions.layout import CAPTIONS_DIR, SHARD_DIR
from imagenet_captions.release.card import BIBTEX, IMAGENET_TERMS_URL, FieldDoc

#: The authors of ImageNet-Captions (Fang et al. 2022), the dataset's creators.
AUTHORS = (
    "Alex Fang",
    "Gabriel Ilharco",
    "Mitchell Wortsman",
    "Yuhao Wan",
    "Vaishaal Shankar",
    "Achal Dave",
    "Ludwig Schmidt",
)
CONFORMS_TO = "http://mlcommons.org/croissant/1.1"
RECORD_SET = "captions"
PARQUET_FILE_SET = "parquet-files"
PARQUET_FORMAT = "application/x-parquet"
TAR_FORMAT = "application/x-tar"

#: The standard 1.1 ``@context`` (as mlcroissant writes it; a different one draws a warning).
CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "arrayShape": "cr:arrayShape",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "description": {"@container": "@language"},
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "name": {"@container": "@language"},
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}

_ATOMIC = {
    pa.string(): "sc:Text",
    pa.large_string(): "sc:Text",
    pa.bool_(): "sc:Boolean",
    pa.int8(): "cr:Int8",
    pa.int16(): "cr:Int16",
    pa.int32(): "cr:Int32",
    pa.int64(): "cr:Int64",
    pa.float32(): "cr:Float32",
    pa.float64(): "cr:Float64",
}


def data_type(t: pa.DataType) -> tuple[str, bool]:
    """(Croissant dataType, is an array) for a Parquet column's Arrow type."""
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner, nested = data_type(t.value_type)
        if nested:
            raise ValueError(f"nested lists have no Croissant field mapping here: {t}")
        return inner, True
    if t not in _ATOMIC:
        raise ValueError(f"no Croissant dataType for the Arrow type {t}")
    return _ATOMIC[t], False


def _field(name: str, t: pa.DataType, doc: str, record_set: str = RECORD_SET) -> dict[str, Any]:
    dtype, is_array = data_type(t)
    field: dict[str, Any] = {
        "@type": "cr:Field",
        "@id": f"{record_set}/{name}",
        "name": name,
        "description": doc,
        "dataType": dtype,
        "source": {"fileSet": {"@id": PARQUET_FILE_SET}, "extract": {"column": name}},
    }
    if is_array:
        field |= {"isArray": True, "arrayShape": "-1"}
    return field


def _file_object(path: str, entry: dict[str, Any], fmt: str, description: str) -> dict[str, Any]:
    return {
        "@type": "cr:FileObject",
        "@id": path,
        "name": path,
        "description": description,
        "contentUrl": path,
        "contentSize": f"{entry['size']} B",
        "encodingFormat": fmt,
        "sha256": entry["sha256"],
    }


@dataclasses.dataclass(frozen=True)
class About:
    """What the document says of the dataset besides its files: ImageNet-Captions by default; a
    class-matched subset (``release.match_card``) says its own, from its folder to its keywords."""

    folder: str = CAPTIONS_DIR  #: where the Parquet files are, relative to the release root
    record_set: str = RECORD_SET
    record_description: str = "One record per ImageNet training image: its Flickr text and caption."
    tar_members: str = "jpg, txt, json, cls"
    creators: tuple[str, ...] = AUTHORS
    keywords: tuple[str, ...] = ("ImageNet", "Flickr", "image captions", "CLIP", "distributional robustness")
    licenses: tuple[str, ...] = (IMAGENET_TERMS_URL, "https://www.flickr.com/creativecommons/")
    cite_as: str = BIBTEX
    #: Further RecordSets (inline ``data``, e.g. the class list), after the Parquet one.
    extra_record_sets: tuple[dict[str, Any], ...] = ()


def croissant_metadata(
    manifest: dict[str, Any],
    schema: pa.Schema,
    fields: list[FieldDoc],
    description: str,
    date: str,
    url: str,
    about: About = About(),
) -> dict[str, Any]:
    """The JSON-LD document for a release whose manifest (without the metadata files' entries) is given."""
    docs = {f.name: f.doc for f in fields}
    record_name = about.record_set
    distribution: list[dict[str, Any]] = []
    for stem, shard in sorted(manifest["shards"].items()):
        pq_entry = shard["parquet"]
        distribution.append(
            _file_object(
                pq_entry["path"],
                pq_entry,
                PARQUET_FORMAT,
                f"Shard {stem}: {shard['samples']} records (Parquet).",
            )
        )
        tar = shard.get("tar")
        if tar and tar.get("published"):
            distribution.append(
                _file_object(
                    f"{SHARD_DIR}/{tar['name']}",
                    tar,
                    TAR_FORMAT,
                    f"Shard {stem}: {shard['samples']} WebDataset samples ({about.tar_members}).",
                )
            )
    distribution.append(
        {
            "@type": "cr:FileSet",
            "@id": PARQUET_FILE_SET,
            "name": PARQUET_FILE_SET,
            "description": "All the Parquet shards (paths relative to this file's folder).",
            "encodingFormat": PARQUET_FORMAT,
            "includes": f"{about.folder}/*.parquet",
        }
    )
    record_set: dict[str, Any] = {
        "@type": "cr:RecordSet",
        "@id": record_name,
        "name": record_name,
        "description": about.record_description,
        "field": [_field(f.name, f.type, docs.get(f.name, ""), record_name) for f in schema],
    }
    if about.record_set == RECORD_SET:  # a build's keys are unique; a match's repeat under --multiple all
        record_set["key"] = {"@id": f"{record_name}/key"}
    return {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": CONFORMS_TO,
        "name": manifest["name"],
        "description": description,
        "url": url,
        "version": manifest["version"],
        "datePublished": date,
        "license": list(about.licenses),
        "citeAs": about.cite_as,
        "creator": [{"@type": "sc:Person", "name": n} for n in about.creators],
        "keywords": list(about.keywords),
        "isLiveDataset": False,
        "distribution": distribution,
        "recordSet": [record_set, *about.extra_record_sets],
    }
