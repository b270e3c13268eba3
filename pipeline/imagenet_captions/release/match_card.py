"""What a release of a ``match`` output says of itself: its manifest section, dataset card and Croissant.

A class-matched subset is not ImageNet-Captions: its rows come from another image-text corpus,
under that corpus's terms, and what defines it is the corpus (kind, files by name, size and
sha256), the matching rule, the vocabulary (with its digest) and the balancing. All of that is read
from the match's report and manifest, the counts from the published Parquet files, so the card
cannot drift from the files beside it. Like a build's release it carries no path of the
publisher's disk (:mod:`imagenet_captions.release.public`), and it names the sorted class list
that ``label`` indexes.
"""

from __future__ import annotations

import collections
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from imagenet_captions.classes import class_index
from imagenet_captions.layout import SHARD_DIR
from imagenet_captions.match.plan import MATCHES_DIR
from imagenet_captions.release import card
from imagenet_captions.release.build_check import Build
from imagenet_captions.release.croissant import About, data_type
from imagenet_captions.release.public import public_metadata, public_name, public_options

#: The RecordSet of the matched rows, and the two inline ones beside it.
RECORD_SET = "matches"
CLASSES_SET = "classes"
CORPUS_SET = "corpus_files"
#: What each column ``match`` writes means (a kept corpus column has its own doc: ``KEPT_DOC``).
FIELD_DOCS = {
    "key": "The corpus row's key (its own, or <file stem>_<row index, 9 digits>).",
    "caption": "The caption the rule matched (after the text cleaning unless --no-clean; never lowered).",
    "wnid": "The WordNet id of the class the caption names.",
    "label": "The class's index in the sorted class list (manifest.json build.labels; the `classes` record set).",
    "terms": "The vocabulary terms of the class that occurred in the caption.",
    "url": "The image's URL, as the corpus gives it.",
    "source_shard": "The corpus tar the sample came from (a webdataset corpus).",
}
KEPT_DOC = "A corpus column kept as it was (--keep-column)."
#: What ``release --with-images`` of a match prints: the images are the corpus's, not this project's.
IMAGES_WARNING = (
    "The image shards hold the corpus's images, under the corpus's terms and its owners' rights: "
    "check them before you publish the tars."
)


def match_section(build: Build) -> dict[str, Any]:
    """The release manifest's ``build`` section for a match: what defines the subset, no paths.

    The match's ``images`` option (each corpus tar's name, size and modification time) is left out:
    the corpus files' names, sizes and sha256 say the same and more, and a time on the publisher's
    disk means nothing to a user."""
    rep, man = build.report, build.manifest
    corpus = rep["corpus"]
    vocabulary = {
        k: public_name(v) if k in ("names", "selection", "exclude_terms") and isinstance(v, str) else v
        for k, v in rep["vocabulary"].items()
    }
    files = []
    for f in corpus["files"]:
        entry = {
            "name": public_name(str(f.get("path", ""))),
            "size": f.get("size"),
            "sha256": f.get("sha256"),
        }
        if "rows" in f:
            entry["rows"] = f["rows"]
        files.append(entry)
    return {
        "stage": "match",
        "num_shards": man["num_shards"],
        "options": public_options({k: v for k, v in man.get("options", {}).items() if k != "images"}),
        "counts": {
            "rows": {"input": rep["rows"]["input"], "outcomes": rep["rows"]["outcomes"]},
            "pairs": rep.get("pairs", {}),
            "written": rep["written"]["pairs"],
        },
        "corpus": {"kind": corpus.get("kind"), "spec": public_metadata(corpus.get("spec")), "files": files},
        "rule": rep["rule"],
        "vocabulary": vocabulary,
        "balance": rep.get("balance"),
        "labels": list(man["labels"]),
    }


def per_class(parquet_paths: list[str]) -> dict[str, int]:
    """Rows per wnid in the published files, one file's ``wnid`` column at a time."""
    counts: collections.Counter[str] = collections.Counter()
    for path in parquet_paths:
        for item in pc.value_counts(pq.read_table(path, columns=["wnid"]).column("wnid")).to_pylist():
            if item["values"] is not None:
                counts[item["values"]] += item["counts"]
    return dict(counts)


def field_docs(schema: pa.Schema) -> list[card.FieldDoc]:
    """The published columns with what they mean (``match``'s own, or a kept corpus column)."""
    return [card.FieldDoc(f.name, str(f.type), f.nullable, FIELD_DOCS.get(f.name, KEPT_DOC)) for f in schema]


def describable(schema: pa.Schema) -> tuple[pa.Schema, list[str]]:
    """(the columns Croissant can type, the names of those it cannot): a kept corpus column may be of
    any Arrow type (a struct, a timestamp), and it must not stop the release."""
    keep, skipped = [], []
    for f in schema:
        try:
            data_type(f.type)
            keep.append(f)
        except ValueError:
            skipped.append(f.name)
    return pa.schema(keep), skipped


def _rule_sentence(section: dict[str, Any]) -> str:
    rule, vocab = section["rule"], section["vocabulary"]
    excluded = f", excluding the terms of `{vocab['exclude_terms']}`" if vocab.get("exclude_terms") else ""
    unique = ", terms naming one class only" if vocab.get("unique_terms") else ""
    return (
        f"vocabulary `{vocab.get('names')}` of the classes `{vocab.get('selection')}` "
        f"({vocab.get('classes')} classes, {vocab.get('terms')} terms{unique}{excluded}; "
        f"digest `{vocab.get('digest')}`), case {rule.get('case')}, overlaps {rule.get('overlaps')}, "
        f"a caption naming several classes: {rule.get('multiple')}, "
        f"{'cleaned captions' if rule.get('clean') else 'captions as they are (--no-clean)'}"
    )


def _balance_sentence(balance: dict[str, Any] | None) -> str:
    if not balance:
        return "No balancing: every match the rule kept is here."
    return (
        f"Balanced: `--balance-to {balance.get('to')}`, at most {balance.get('max_per_class')} a class, "
        f"seed {balance.get('seed')}; {balance.get('written'):,} of the {balance.get('target'):,} targeted "
        "pairs written."
    )


def description(section: dict[str, Any], rows: int, with_images: bool) -> str:
    """One paragraph: what the subset is, from which corpus, by which rule."""
    corpus = section["corpus"]
    return (
        f"A class-matched subset of a {corpus['kind']} image-text corpus ({len(corpus['files'])} files, "
        f"named with their sha256 in the card and the corpus_files record set): {rows:,} rows whose "
        f"caption names an ImageNet class under imagenet-captions' matching rule ({_rule_sentence(section)}). "
        f"{_balance_sentence(section['balance'])} `label` indexes the {len(section['labels'])} classes of "
        "the classes record set (sorted wnids)."
        + (" Includes the WebDataset image shards (the corpus's terms apply)." if with_images else "")
    )


def _inline_set(
    name: str, desc: str, key: str, columns: list[tuple[str, str]], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "@type": "cr:RecordSet",
        "@id": name,
        "name": name,
        "description": desc,
        "key": {"@id": f"{name}/{key}"},
        "field": [{"@type": "cr:Field", "@id": f"{name}/{c}", "name": c, "dataType": t} for c, t in columns],
        "data": [{f"{name}/{c}": r[c] for c, _ in columns} for r in rows],
    }


def croissant_about(section: dict[str, Any], skipped: list[str]) -> About:
    """The Croissant document's description of a class-matched subset (see :class:`About`)."""
    names = dict(class_index())
    classes = [
        {"label": i, "wnid": w, "name": names.get(w, "").replace("_", " ")}
        for i, w in enumerate(section["labels"])
    ]
    files = [
        {"name": f["name"], "size": f["size"], "sha256": f["sha256"]} for f in section["corpus"]["files"]
    ]
    note = (
        f" Columns of types Croissant cannot describe are left out here: {', '.join(skipped)}."
        if skipped
        else ""
    )
    return About(
        folder=MATCHES_DIR,
        record_set=RECORD_SET,
        record_description="One row per (caption, class) the rule kept: the corpus row's key, caption and class."
        + note,
        tar_members="the image as the corpus had it, txt, json, cls",
        creators=(),
        keywords=(
            "ImageNet classes",
            "class-matched subset",
            "image-text",
            "CLIP",
            "distributional robustness",
        ),
        licenses=("The source corpus's terms and its owners' rights (README.md, Licences)",),
        cite_as=card.BIBTEX,
        extra_record_sets=(
            _inline_set(
                CLASSES_SET,
                "The sorted class list: `label` is a class's index here.",
                "label",
                [("label", "cr:Int64"), ("wnid", "sc:Text"), ("name", "sc:Text")],
                classes,
            ),
            _inline_set(
                CORPUS_SET,
                "The corpus files the subset was matched from: name, size in bytes and sha256.",
                "name",
                [("name", "sc:Text"), ("size", "cr:Int64"), ("sha256", "sc:Text")],
                files,
            ),
        ),
    )


def _counts_table(counts: dict[str, Any]) -> str:
    rows = [("rows", "input", f"{counts['rows']['input']:,}")]
    rows += [("rows", k, f"{v:,}") for k, v in sorted(counts["rows"]["outcomes"].items())]
    rows += [("pairs", k, f"{v:,}") for k, v in sorted(counts["pairs"].get("outcomes", {}).items())]
    return card.table(["what", "outcome", "count"], rows)


def render_card(
    manifest: dict[str, Any], rows_per_class: dict[str, int], fields: list[card.FieldDoc], date: str, url: str
) -> str:
    """The whole README.md for a release of a match output (manifest without the card's own entry)."""
    section = manifest["build"]
    name = manifest["name"]
    rows = sum(rows_per_class.values())
    header = {
        "pretty_name": name,
        "license": "other",
        "license_name": "the-source-corpus-terms",
        "task_categories": ["image-to-text", "zero-shot-image-classification", "image-classification"],
        "size_categories": [card.size_category(rows)],
        "tags": ["imagenet-classes", "class-matched-subset", "captions", "clip", "distribution-shift"],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": "train", "path": f"{MATCHES_DIR}/*.parquet"}],
                "default": True,
            }
        ],
    }
    tars = [s["tar"] for s in manifest["shards"].values() if s.get("tar")]
    images = (
        f"**This release includes the image shards** (`{SHARD_DIR}/*.tar`, WebDataset, what `train --shards` "
        "reads): the images are the corpus's, under its terms."
        if manifest["with_images"]
        else (
            f"The image shards are not included; their sha256 sums are in `manifest.json` ({len(tars)} tars)."
            if tars
            else "The corpus had no images in it (its rows carry URLs where it gave them)."
        )
    )
    corpus = section["corpus"]
    corpus_table = card.table(
        ["file", "bytes", "sha256", "rows"],
        ((f["name"], f"{f['size']:,}", f"`{f['sha256']}`", f.get("rows", "")) for f in corpus["files"]),
    )
    names = dict(class_index())
    class_table = card.table(
        ["label", "wnid", "name", "rows"],
        (
            (i, w, names.get(w, "").replace("_", " "), f"{rows_per_class.get(w, 0):,}")
            for i, w in enumerate(section["labels"])
            if rows_per_class.get(w, 0) or len(section["labels"]) <= 1000
        ),
    )
    fields_table = card.table(
        ["field", "type", "nullable", "meaning"],
        ((f.name, f"`{f.type}`", "yes" if f.nullable else "no", f.doc) for f in fields),
    )
    present = sum(1 for w in section["labels"] if rows_per_class.get(w, 0))
    body = f"""
# {name}

Version {manifest["version"]} (made {date} by imagenet-captions {manifest["tool_version"]}). {url}

**A class-matched subset** of a `{corpus["kind"]}` image-text corpus, made by `imagenet-captions match`:
the rows whose caption names an ImageNet class, as the follow-ups of ImageNet-Captions (Fang et al.,
ICML 2022, [arXiv:{card.PAPER_URL.rsplit("/", 1)[-1]}]({card.PAPER_URL})) build them to compare with it. It holds {rows:,} rows,
one per (caption, class), in {len(manifest["shards"])} Parquet files under `{MATCHES_DIR}/`. {images}

## How it was matched

The rule: {_rule_sentence(section)}. {_balance_sentence(section["balance"])}
The corpus (`{corpus["spec"]}`), file by file:

{corpus_table}

Every corpus row is counted once, as written or under a named reason, and every (row, class)
match once:

{_counts_table(section["counts"])}

The options are in `manifest.json` (`build.options`); the same corpus and options give
byte-identical files.

## Classes

`label` is a class's index in the sorted class list (`manifest.json` `build.labels`); {present} of its
{len(section["labels"])} classes have rows{"" if len(section["labels"]) <= 1000 else " (only those are listed)"}:

{class_table}

## Fields

{fields_table}

## Licences

The captions, URLs and images are the corpus's, under the corpus's terms and its owners' rights;
this release adds the class of each row and nothing else. Check the corpus's terms before you
redistribute it.

## How to load it

```python
import glob
import pyarrow.parquet as pq

table = pq.ParquetDataset(sorted(glob.glob("<release>/{MATCHES_DIR}/*.parquet"))).read()
```

Every file's size and sha256 are in `manifest.json`; `imagenet-captions download` fetches and verifies
them.

## Citation

```bibtex
{card.BIBTEX}
```
"""
    return f"---\n{yaml.safe_dump(header, sort_keys=False, allow_unicode=True)}---\n{body}"
