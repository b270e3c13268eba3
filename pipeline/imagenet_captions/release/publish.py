"""``imagenet-captions release <build> --out <release>``: a build made into a publishable folder.

The release holds byte-for-byte copies of the build's shard Parquet files (``captions/``), the tars
only with ``--with-images`` (``shards/``), a dataset card (``README.md``), a Croissant description
(``croissant.json``) and, written last, ``manifest.json`` (see ``release.manifest``). It refuses a
build that is not complete (no report, accounting problems, a listed shard missing, leftover
temporary files, shard commit records of an unfinished rerun) rather than publish a partial dataset,
and it never overwrites a folder that is not a release of the same name. Every file appears whole or
not at all (temporary name, then rename). Plain Python: no Beam; the release holds the build's folder
lock while it reads, and never changes a byte of the build's data.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import hashlib
import json
import os
import re
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import imagenet_captions
from imagenet_captions.classes import wnids
from imagenet_captions.errors import UsageError
from imagenet_captions.fsio import sha256_file
from imagenet_captions.locks import folder_lock
from imagenet_captions.release import card, croissant
from imagenet_captions.release import manifest as mf
from imagenet_captions.schema import schema_spec
from imagenet_captions.shards import layout
from imagenet_captions.shards.incremental import COMMITS_DIR

DEFAULT_NAME = "imagenet-captions"
DEFAULT_URL = "https://github.com/mlfoundations/imagenet-captions"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_STEM_RE = re.compile(r"^\d{5}$")
_COPY_CHUNK = 1 << 22


@dataclasses.dataclass(frozen=True)
class ReleaseOptions:
    build: str
    out: str
    name: str = DEFAULT_NAME
    version: str = "1.0.0"
    with_images: bool = False
    date: str | None = None  #: datePublished (YYYY-MM-DD); None: today (UTC)
    url: str = DEFAULT_URL
    threads: int = 4  #: files hashed (and copied) at once

    def __post_init__(self) -> None:
        for what, path in (("build", self.build), ("--out", self.out)):
            if "://" in path:
                raise UsageError(f"{what} {path}: release reads and writes local folders only")
        if not _NAME_RE.match(self.name):
            raise UsageError(f"--name {self.name!r}: use letters, digits, '.', '_' and '-' (at most 96)")
        if not mf.VERSION_RE.match(self.version):
            raise UsageError(f"--version {self.version!r} is not X.Y.Z (e.g. 1.0.0)")
        if self.date is not None:
            try:
                datetime.date.fromisoformat(self.date)
            except ValueError:
                raise UsageError(f"--date {self.date!r} is not YYYY-MM-DD") from None
        if not re.match(r"^https?://\S+$", self.url):
            raise UsageError(f"--url {self.url!r} is not an http(s) URL")
        if self.threads < 1:
            raise UsageError(f"--threads must be at least 1, not {self.threads}")
        if os.path.abspath(self.out) == os.path.abspath(self.build):
            raise UsageError("--out must not be the build folder")


@dataclasses.dataclass(frozen=True)
class Build:
    """A complete build, as checked: where its shards are and what its manifest and report say."""

    dir: str
    shard_dir: str
    text_only: bool
    manifest: dict[str, Any]
    report: dict[str, Any]

    def shard_path(self, name: str) -> str:
        return os.path.join(self.shard_dir, name)


def _load_json(path: str, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist: {what}") from None
    except ValueError as e:
        raise UsageError(f"{path} is not JSON ({e}): {what}") from None


def inspect_build(build_dir: str) -> Build:
    """The build, or a UsageError naming the first reason it is not complete enough to publish.

    Checked from the files alone (cheaply: Parquet footers, not rows): ``validate`` is the full
    check, and a publisher should run it first; this refuses what would make a wrong release.
    """
    if not os.path.isdir(build_dir):
        raise UsageError(f"{build_dir} is not a folder")
    shard_dir = os.path.join(build_dir, layout.SHARD_DIR)
    text_only = not os.path.isdir(shard_dir)
    if text_only:
        shard_dir = os.path.join(build_dir, layout.CAPTIONS_DIR)
    if not os.path.isdir(shard_dir):
        raise UsageError(f"{build_dir} holds no {layout.SHARD_DIR}/ or {layout.CAPTIONS_DIR}/: not a build")
    incomplete = "not a complete build (did `imagenet-captions build` finish?)"
    report = _load_json(os.path.join(build_dir, layout.REPORT_FILE), incomplete)
    manifest = _load_json(os.path.join(shard_dir, layout.MANIFEST_FILE), incomplete)
    leftovers = sorted(
        os.path.relpath(os.path.join(d, n), build_dir)
        for d in (build_dir, shard_dir)
        for n in os.listdir(d)
        if n.endswith(".tmp")
    )
    if leftovers:
        raise UsageError(
            f"{build_dir}: unfinished files left behind ({', '.join(leftovers[:3])}): {incomplete}"
        )
    commits = os.path.join(shard_dir, COMMITS_DIR)
    if os.path.isdir(commits) and os.listdir(commits):
        raise UsageError(f"{commits} holds the records of shards written after the manifest: {incomplete}")
    if report.get("accounting_problems"):
        raise UsageError(
            f"{build_dir}/report.json has accounting problems: {report['accounting_problems'][0]}"
        )
    shards = manifest.get("shards")
    if not isinstance(shards, dict) or not shards or "num_shards" not in manifest:
        raise UsageError(f"{shard_dir}/manifest.json lists no shards: {incomplete}")
    suffixes = (".parquet",) if text_only else (".tar", ".parquet")
    listed = set()
    for stem, shard in sorted(shards.items()):
        expect = [f"{stem}{s}" for s in suffixes]
        if not _STEM_RE.match(stem) or sorted(shard.get("files", [])) != sorted(expect):
            raise UsageError(
                f"{shard_dir}/manifest.json: shard {stem} lists {shard.get('files')}, not {expect}"
            )
        missing = [f for f in expect if not os.path.isfile(os.path.join(shard_dir, f))]
        if missing:
            raise UsageError(f"{shard_dir}: {missing[0]} is in the build's manifest but not on disk")
        listed.update(expect)
        try:
            rows = pq.read_metadata(os.path.join(shard_dir, f"{stem}.parquet")).num_rows
        except (OSError, pa.ArrowException) as e:
            raise UsageError(f"{shard_dir}/{stem}.parquet is not a readable Parquet file: {e}") from None
        if rows != shard.get("written"):
            raise UsageError(
                f"{shard_dir}/{stem}.parquet has {rows} rows, the manifest says {shard.get('written')}"
            )
    extra = sorted(n for n in os.listdir(shard_dir) if n.endswith(suffixes) and n not in listed)
    if extra:
        raise UsageError(
            f"{shard_dir}: {extra[0]} is on disk but not in the build's manifest (a stale shard?)"
        )
    total = sum(s["written"] for s in shards.values())
    if report.get("written") != total:
        raise UsageError(
            f"{build_dir}/report.json says {report.get('written')} written, the shards hold {total}"
        )
    if not text_only:
        sizes = _load_json(os.path.join(shard_dir, layout.SIZES_FILE), incomplete)
        if sizes != {f"{stem}.tar": s["written"] for stem, s in shards.items()}:
            raise UsageError(f"{shard_dir}/sizes.json does not match the build's manifest")
    return Build(build_dir, shard_dir, text_only, manifest, report)


def prepare_out(opts: ReleaseOptions) -> None:
    """Make ``--out`` ready, or refuse it: only an empty folder or an earlier release of this name.

    An earlier release (its manifest, or the marker of an interrupted run, names the same release)
    is overwritten; its manifest is removed first, so a run that dies half way never leaves a folder
    that claims to be complete. Anything in it that is not part of a release's layout is refused
    rather than deleted: that folder is someone's, not ours.
    """
    out = opts.out
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out} exists and is not a folder")
    names = sorted(os.listdir(out)) if os.path.isdir(out) else []
    if names:
        previous = _previous_release_name(out)
        if previous is None:
            raise UsageError(f"--out {out} is not empty and not a release: choose an empty or new folder")
        if previous != opts.name:
            raise UsageError(f"--out {out} holds the release {previous!r}, not {opts.name!r}")
        strangers = _not_release_files(out)
        if strangers:
            raise UsageError(
                f"--out {out} holds files a release does not have ({strangers[0]}); move them first"
            )
    os.makedirs(out, exist_ok=True)
    mf.write_atomic(os.path.join(out, mf.INCOMPLETE_MARKER), opts.name.encode() + b"\n")
    manifest_path = os.path.join(out, mf.MANIFEST_FILE)
    if os.path.exists(manifest_path):
        os.remove(manifest_path)


def _previous_release_name(out: str) -> str | None:
    marker = os.path.join(out, mf.INCOMPLETE_MARKER)
    if os.path.isfile(marker):
        with open(marker, encoding="utf-8") as f:
            return f.read().strip()
    if os.path.isfile(os.path.join(out, mf.MANIFEST_FILE)):
        try:
            return mf.read_manifest(out)["name"]
        except UsageError:
            return None
    return None


def _not_release_files(out: str) -> list[str]:
    allowed_top = {
        mf.MANIFEST_FILE,
        mf.CARD_FILE,
        mf.CROISSANT_FILE,
        mf.INCOMPLETE_MARKER,
        mf.CAPTIONS_DIR,
        mf.SHARDS_DIR,
    }
    allowed = {
        mf.CAPTIONS_DIR: re.compile(r"^\d{5}\.parquet(\.tmp)?$"),
        mf.SHARDS_DIR: re.compile(rf"^(\d{{5}}\.tar|{re.escape(mf.SIZES_FILE)})(\.tmp)?$"),
    }
    strangers = []
    for name in sorted(os.listdir(out)):
        base = name.removesuffix(".tmp")
        path = os.path.join(out, name)
        if base not in allowed_top or (base in allowed) != os.path.isdir(path):
            strangers.append(name)
        elif base in allowed and name == base:
            strangers += [f"{name}/{n}" for n in sorted(os.listdir(path)) if not allowed[base].match(n)]
    return strangers


def _copy_and_hash(src: str, dst: str) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` (temporary name, then rename) and hash the bytes as they pass, in one read."""
    tmp = f"{dst}.tmp"
    h, size = hashlib.sha256(), 0
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        while block := fin.read(_COPY_CHUNK):
            h.update(block)
            fout.write(block)
            size += len(block)
    shutil.copymode(src, tmp)
    os.replace(tmp, dst)
    return h.hexdigest(), size


def publish_shards(build: Build, opts: ReleaseOptions) -> dict[str, dict[str, Any]]:
    """Copy the Parquet files (and tars when published), hash every tar: the manifest's ``shards``.

    Runs on ``opts.threads`` threads: hashlib and file I/O release the GIL, and the tars are
    gigabytes each in a real build, so hashing is the release's whole cost.
    """
    os.makedirs(os.path.join(opts.out, mf.CAPTIONS_DIR), exist_ok=True)
    if opts.with_images:
        os.makedirs(os.path.join(opts.out, mf.SHARDS_DIR), exist_ok=True)
    stems = sorted(build.manifest["shards"])
    jobs: dict[tuple[str, str], Any] = {}
    with ThreadPoolExecutor(max_workers=opts.threads) as pool:
        for stem in stems:
            jobs[stem, "parquet"] = pool.submit(
                _copy_and_hash,
                build.shard_path(f"{stem}.parquet"),
                os.path.join(opts.out, mf.CAPTIONS_DIR, f"{stem}.parquet"),
            )
            if not build.text_only:
                src = build.shard_path(f"{stem}.tar")
                jobs[stem, "tar"] = (
                    pool.submit(_copy_and_hash, src, os.path.join(opts.out, mf.SHARDS_DIR, f"{stem}.tar"))
                    if opts.with_images
                    else pool.submit(sha256_file, src)
                )
        results = {k: f.result() for k, f in jobs.items()}
    shards: dict[str, dict[str, Any]] = {}
    for stem in stems:
        digest, size = results[stem, "parquet"]
        entry: dict[str, Any] = {
            "samples": build.manifest["shards"][stem]["written"],
            "parquet": {"path": f"{mf.CAPTIONS_DIR}/{stem}.parquet", "sha256": digest, "size": size},
            "tar": None,
        }
        if not build.text_only:
            digest, size = results[stem, "tar"]
            entry["tar"] = {
                "name": f"{stem}.tar",
                "sha256": digest,
                "size": size,
                "published": opts.with_images,
            }
        shards[stem] = entry
    if opts.with_images:
        _copy_and_hash(
            build.shard_path(layout.SIZES_FILE), os.path.join(opts.out, mf.SHARDS_DIR, mf.SIZES_FILE)
        )
    return shards


def remove_stale(out: str, keep: set[str]) -> list[str]:
    """Remove an earlier release's files that this one does not have (fewer shards, no tars now)."""
    removed = []
    for sub in (mf.CAPTIONS_DIR, mf.SHARDS_DIR):
        folder = os.path.join(out, sub)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            rel = f"{sub}/{name}"
            if rel not in keep:
                os.remove(os.path.join(folder, name))
                removed.append(rel)
        if not os.listdir(folder):
            os.rmdir(folder)
    return removed


def collect_stats(parquet_paths: list[str]) -> card.ReleaseStats:
    """The card's counts, one Parquet file at a time (only the few columns they need stay in memory)."""
    per_class: collections.Counter[str] = collections.Counter()
    licenses: collections.Counter[str] = collections.Counter()
    languages: collections.Counter[str] = collections.Counter()
    empty: collections.Counter[str] = collections.Counter()
    records = with_photo_id = 0
    for path in parquet_paths:
        t = pq.read_table(
            path, columns=["wnid", "license", "lang", "title", "description", "tags", "photo_id"]
        )
        records += t.num_rows
        for column, counter in (("wnid", per_class), ("license", licenses), ("lang", languages)):
            for item in pc.value_counts(t.column(column)).to_pylist():
                if item["values"] is not None:
                    counter[item["values"]] += item["counts"]
        licenses["unknown"] += t.column("license").null_count
        for field in ("title", "description"):
            empty[field] += pc.sum(pc.equal(pc.utf8_length(t.column(field)), 0)).as_py() or 0
        empty["tags"] += pc.sum(pc.equal(pc.list_value_length(t.column("tags")), 0)).as_py() or 0
        with_photo_id += t.num_rows - t.column("photo_id").null_count
    if not licenses["unknown"]:
        del licenses["unknown"]
    all_classes = {w: per_class.get(w, 0) for w in wnids()}
    all_classes |= {w: n for w, n in per_class.items() if w not in all_classes}
    return card.ReleaseStats(
        records, all_classes, dict(licenses), dict(languages), dict(empty), with_photo_id
    )


def field_docs(schema: pa.Schema) -> list[card.FieldDoc]:
    """The published columns (the Parquet files' own schema) with the record schema's types and docs."""
    spec = {f["name"]: f for f in schema_spec()["fields"]}
    docs = []
    for f in schema:
        s = spec.get(f.name, {})
        doc = (f.metadata or {}).get(b"doc", b"").decode() or s.get("doc", "")
        docs.append(card.FieldDoc(f.name, s.get("type", str(f.type)), f.nullable, doc))
    return docs


def build_section(build: Build) -> dict[str, Any]:
    rep = build.report
    counts: dict[str, Any] = {k: rep[k] for k in ("records", "images") if k in rep}
    counts["written"] = rep["written"]
    return {
        "num_shards": build.manifest["num_shards"],
        "options": build.manifest.get("options", {}),
        "counts": counts,
        "metadata": rep.get("inputs", {}).get("metadata"),
    }


def make_release(opts: ReleaseOptions) -> dict[str, Any]:
    """Publish ``opts.build`` into ``opts.out``; returns the manifest written.

    Holds the build folder's lock throughout, so no build can rewrite a shard between the checks and
    the copies (a release of half an old and half a new build would verify and still be wrong).
    """
    if not os.path.isdir(opts.build):
        raise UsageError(f"{opts.build} is not a folder")
    with folder_lock(opts.build, "release"):
        return _make_release(opts)


def _make_release(opts: ReleaseOptions) -> dict[str, Any]:
    build = inspect_build(opts.build)
    prepare_out(opts)
    date = opts.date or datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    shards = publish_shards(build, opts)
    files = [
        mf.file_entry(s["parquet"]["path"], s["parquet"]["size"], s["parquet"]["sha256"])
        for s in shards.values()
    ]
    if opts.with_images:
        files += [
            mf.file_entry(f"{mf.SHARDS_DIR}/{s['tar']['name']}", s["tar"]["size"], s["tar"]["sha256"])
            for s in shards.values()
        ]
        digest, size = sha256_file(os.path.join(opts.out, mf.SHARDS_DIR, mf.SIZES_FILE))
        files.append(mf.file_entry(f"{mf.SHARDS_DIR}/{mf.SIZES_FILE}", size, digest))
    manifest: dict[str, Any] = {
        "format": mf.FORMAT,
        "format_version": mf.FORMAT_VERSION,
        "name": opts.name,
        "version": opts.version,
        "tool_version": imagenet_captions.__version__,
        "with_images": opts.with_images,
        "files": [],
        "build": build_section(build),
        "shards": shards,
    }
    parquet_paths = [os.path.join(opts.out, s["parquet"]["path"]) for s in shards.values()]
    stats = collect_stats(parquet_paths)
    schema = pq.read_schema(parquet_paths[0])
    fields = field_docs(schema)
    readme = card.render_card(manifest, stats, fields, date, opts.url).encode()
    description = (
        f"ImageNet-Captions (Fang et al., ICML 2022): {stats.records:,} ImageNet-1k training images' Flickr "
        "titles, descriptions and tags, with a caption, keyed by ImageNet image id."
        + (" Includes the WebDataset image shards (ImageNet's terms apply)." if opts.with_images else "")
    )
    jsonld = croissant.croissant_metadata(manifest, schema, fields, description, date, opts.url)
    croissant_bytes = (json.dumps(jsonld, indent=1, ensure_ascii=False) + "\n").encode()
    for name, data in ((mf.CARD_FILE, readme), (mf.CROISSANT_FILE, croissant_bytes)):
        mf.write_atomic(os.path.join(opts.out, name), data)
        files.append(mf.file_entry(name, len(data), hashlib.sha256(data).hexdigest()))
    manifest["files"] = sorted(files, key=lambda e: e["path"])
    remove_stale(opts.out, {e["path"] for e in files})
    mf.write_manifest(opts.out, manifest)
    os.remove(os.path.join(opts.out, mf.INCOMPLETE_MARKER))
    return manifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("build", help="a build folder (the --out of `imagenet-captions build`)")
    parser.add_argument(
        "--out", required=True, help="the release folder (empty, new, or a release of --name)"
    )
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"the release's name (default {DEFAULT_NAME})")
    parser.add_argument("--version", default="1.0.0", help="the release's version, X.Y.Z (default 1.0.0)")
    parser.add_argument(
        "--with-images",
        action="store_true",
        help="also publish the image tars (ImageNet's terms: only on gated or private mirrors)",
    )
    parser.add_argument("--date", default=None, help="datePublished, YYYY-MM-DD (default: today, UTC)")
    parser.add_argument(
        "--url", default=DEFAULT_URL, help="the dataset's home page, for the card and Croissant"
    )
    parser.add_argument("--threads", type=int, default=4, help="files copied and hashed at once (default 4)")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    opts = ReleaseOptions(
        build=args.build,
        out=args.out,
        name=args.name,
        version=args.version,
        with_images=args.with_images,
        date=args.date,
        url=args.url,
        threads=args.threads,
    )
    if opts.with_images:
        print(f"WARNING: {card.IMAGES_WARNING}", file=sys.stderr)
    manifest = make_release(opts)
    total = sum(f["size"] for f in manifest["files"])
    tars = sum(1 for s in manifest["shards"].values() if s["tar"])
    print(
        f"release {manifest['name']} {manifest['version']}: {len(manifest['shards'])} shards, "
        f"{manifest['build']['counts']['written']:,} records, {len(manifest['files'])} files, {total:,} bytes"
        f"{f', {tars} tars hashed' if tars else ''}{' and published' if opts.with_images else ''} in {opts.out}"
    )
    return 0
