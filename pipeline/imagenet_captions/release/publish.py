"""``imagenet-captions release <build> --out <release>``: a build made into a publishable folder.

The release holds byte-for-byte copies of the build's shard Parquet files (``captions/``), the tars
only with ``--with-images`` (``shards/``), a dataset card (``README.md``), a Croissant description
(``croissant.json``) and, written last, ``manifest.json`` (see ``release.manifest``). It refuses a
build that is not complete (no report, accounting problems, a listed shard missing, leftover
temporary files, shard commit records of an unfinished rerun: ``release.build_check``) rather than
publish a partial dataset, and it never overwrites a folder that is not a release of the same name
(``release.out_folder``); the card's counts come from the copied files (``release.card_inputs``).
Every file it publishes or records must have the size and sha256 the build's manifest gives it
(checked in the one read that copies or hashes it), and no file carries a path of the publisher's
disk: names, sizes and digests only. Every file appears whole or not at all (temporary name, then rename). Plain Python: no Beam; the
release holds the build's folder lock while it reads, and never changes a byte of the build's data.
"""

from __future__ import annotations

import argparse
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

import pyarrow.parquet as pq

import imagenet_captions
from imagenet_captions import fsio, layout
from imagenet_captions import manifest as mf
from imagenet_captions.errors import UsageError
from imagenet_captions.fsio import sha256_file
from imagenet_captions.locks import folder_lock, missing_folders, remove_empty
from imagenet_captions.match.plan import MATCHES_DIR
from imagenet_captions.release import card, croissant, match_card
from imagenet_captions.release.build_check import Build, expected_sizes, inspect_build
from imagenet_captions.release.card_inputs import collect_stats, field_docs
from imagenet_captions.release.match_check import inspect_match, is_match_output
from imagenet_captions.release.out_folder import discard, prepare_out, remove_stale
from imagenet_captions.release.public import public_metadata, public_options

__all__ = [
    "DEFAULT_NAME",
    "DEFAULT_URL",
    "Build",
    "ReleaseOptions",
    "add_arguments",
    "collect_stats",
    "field_docs",
    "inspect_build",
    "make_release",
    "publish_shards",
    "run",
]

DEFAULT_NAME = "imagenet-captions"
DEFAULT_URL = "https://github.com/mlfoundations/imagenet-captions"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
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


def _copy_and_hash(src: str, dst: str) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` (temporary name, then rename) and hash the bytes as they pass, in one read."""
    h, size = hashlib.sha256(), 0
    with open(src, "rb") as fin, fsio.atomic_write(dst) as fout:
        while block := fin.read(_COPY_CHUNK):
            h.update(block)
            fout.write(block)
            size += len(block)
    shutil.copymode(src, dst)
    return h.hexdigest(), size


def publish_shards(build: Build, opts: ReleaseOptions) -> dict[str, dict[str, Any]]:
    """Copy the Parquet files (and tars when published), hash every tar: the manifest's ``shards``.

    Runs on ``opts.threads`` threads: hashlib and file I/O release the GIL, and the tars are
    gigabytes each in a real build, so hashing is the release's whole cost.
    """
    folder = parquet_folder(build)
    os.makedirs(os.path.join(opts.out, folder), exist_ok=True)
    if opts.with_images:
        os.makedirs(os.path.join(opts.out, layout.SHARD_DIR), exist_ok=True)
    stems = sorted(build.manifest["shards"])
    jobs: dict[tuple[str, str], Any] = {}
    with ThreadPoolExecutor(max_workers=opts.threads) as pool:
        for stem in stems:
            jobs[stem, "parquet"] = pool.submit(
                _copy_and_hash,
                build.shard_path(f"{stem}.parquet"),
                os.path.join(opts.out, folder, f"{stem}.parquet"),
            )
            if not build.text_only:
                src = build.shard_path(f"{stem}.tar")
                jobs[stem, "tar"] = (
                    pool.submit(_copy_and_hash, src, os.path.join(opts.out, layout.SHARD_DIR, f"{stem}.tar"))
                    if opts.with_images
                    else pool.submit(sha256_file, src)
                )
        results = {k: f.result() for k, f in jobs.items()}
    for (stem, kind), (digest, size) in sorted(results.items()):
        build.confirm(f"{stem}.{kind}", size, digest)
    shards: dict[str, dict[str, Any]] = {}
    for stem in stems:
        digest, size = results[stem, "parquet"]
        entry: dict[str, Any] = {
            "samples": build.manifest["shards"][stem]["written"],
            "parquet": {"path": f"{folder}/{stem}.parquet", "sha256": digest, "size": size},
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
        _publish_sizes(build, os.path.join(opts.out, layout.SHARD_DIR, layout.SIZES_FILE))
    return shards


def parquet_folder(build: Build) -> str:
    """Where the release puts the Parquet files: ``captions/`` for a build, ``matches/`` for a match
    (the name its output gives them: a class-matched subset is not ImageNet-Captions' captions)."""
    return MATCHES_DIR if build.kind == "match" else layout.CAPTIONS_DIR


def _publish_sizes(build: Build, dst: str) -> None:
    """Publish ``sizes.json`` as read once and checked against the build's manifest (not read twice)."""
    src = build.shard_path(layout.SIZES_FILE)
    with open(src, "rb") as f:
        data = f.read()
    try:
        ok = json.loads(data) == expected_sizes(build.manifest)
    except ValueError:
        ok = False
    if not ok:
        raise UsageError(
            f"{src} does not match the {build.kind}'s manifest: it changed after the {build.kind}"
        )
    mf.write_atomic(dst, data)
    shutil.copymode(src, dst)


def build_section(build: Build) -> dict[str, Any]:
    rep = build.report
    counts: dict[str, Any] = {k: rep[k] for k in ("records", "images") if k in rep}
    counts["written"] = rep["written"]
    inputs = rep.get("inputs")
    return {
        "num_shards": build.manifest["num_shards"],
        "options": public_options(build.manifest.get("options", {})),
        "counts": counts,
        "metadata": public_metadata(inputs.get("metadata") if isinstance(inputs, dict) else None),
    }


def make_release(opts: ReleaseOptions) -> dict[str, Any]:
    """Publish ``opts.build`` into ``opts.out``; returns the manifest written.

    Holds the build folder's lock throughout, so no build can rewrite a shard between the checks and
    the copies (a release of half an old and half a new build would verify and still be wrong). A
    refusal found after files were written (a file whose digest is not the build's) removes what
    this run wrote when ``--out`` was new or empty: nothing is left of a release that was refused.
    """
    if not os.path.isdir(opts.build):
        raise UsageError(f"{opts.build} is not a folder")
    made = missing_folders(opts.out)
    was_empty = bool(made) or (os.path.isdir(opts.out) and not os.listdir(opts.out))
    with folder_lock(opts.build, "release"):
        try:
            return _make_release(opts)
        except UsageError:
            if was_empty:
                discard(opts.out)
                remove_empty(made)
            raise


def _make_release(opts: ReleaseOptions) -> dict[str, Any]:
    build = inspect_match(opts.build) if is_match_output(opts.build) else inspect_build(opts.build)
    prepare_out(opts.out, opts.name)
    date = opts.date or datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    shards = publish_shards(build, opts)
    files = [
        mf.file_entry(s["parquet"]["path"], s["parquet"]["size"], s["parquet"]["sha256"])
        for s in shards.values()
    ]
    if opts.with_images:
        files += [
            mf.file_entry(f"{layout.SHARD_DIR}/{s['tar']['name']}", s["tar"]["size"], s["tar"]["sha256"])
            for s in shards.values()
        ]
        digest, size = sha256_file(os.path.join(opts.out, layout.SHARD_DIR, layout.SIZES_FILE))
        files.append(mf.file_entry(f"{layout.SHARD_DIR}/{layout.SIZES_FILE}", size, digest))
    manifest: dict[str, Any] = {
        "format": mf.FORMAT,
        "format_version": mf.FORMAT_VERSION,
        "name": opts.name,
        "version": opts.version,
        "tool_version": imagenet_captions.__version__,
        "with_images": opts.with_images,
        "files": [],
        "build": match_card.match_section(build) if build.kind == "match" else build_section(build),
        "shards": shards,
    }
    parquet_paths = [os.path.join(opts.out, s["parquet"]["path"]) for s in shards.values()]
    schema = pq.read_schema(parquet_paths[0])
    if build.kind == "match":
        readme, jsonld = _match_descriptions(manifest, parquet_paths, schema, date, opts)
    else:
        stats = collect_stats(parquet_paths)
        fields = field_docs(schema)
        readme = card.render_card(manifest, stats, fields, date, opts.url).encode()
        description = (
            f"ImageNet-Captions (Fang et al., ICML 2022): {stats.records:,} ImageNet-1k training images' "
            "Flickr titles, descriptions and tags, with a caption, keyed by ImageNet image id."
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


def _match_descriptions(
    manifest: dict[str, Any], parquet_paths: list[str], schema: Any, date: str, opts: ReleaseOptions
) -> tuple[bytes, dict[str, Any]]:
    """The card and the Croissant document of a class-matched subset (``release.match_card``)."""
    rows_per_class = match_card.per_class(parquet_paths)
    fields = match_card.field_docs(schema)
    readme = match_card.render_card(manifest, rows_per_class, fields, date, opts.url).encode()
    described, skipped = match_card.describable(schema)
    description = match_card.description(manifest["build"], sum(rows_per_class.values()), opts.with_images)
    about = match_card.croissant_about(manifest["build"], skipped)
    jsonld = croissant.croissant_metadata(manifest, described, fields, description, date, opts.url, about)
    return readme, jsonld


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "build", help="a build folder (the --out of `imagenet-captions build`) or a match output (of `match`)"
    )
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
    manifest = make_release(opts)
    is_match = manifest["build"].get("stage") == "match"
    if opts.with_images:  # after the release: a refused one is its one line, and publishes nothing
        print(f"WARNING: {match_card.IMAGES_WARNING if is_match else card.IMAGES_WARNING}", file=sys.stderr)
    total = sum(f["size"] for f in manifest["files"])
    tars = sum(1 for s in manifest["shards"].values() if s["tar"])
    print(
        f"release {manifest['name']} {manifest['version']}: {len(manifest['shards'])} shards, "
        f"{manifest['build']['counts']['written']:,} {'rows' if is_match else 'records'}, "
        f"{len(manifest['files'])} files, {total:,} bytes"
        f"{f', {tars} tars hashed' if tars else ''}{' and published' if opts.with_images else ''} in {opts.out}"
    )
    return 0
