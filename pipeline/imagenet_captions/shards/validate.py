"""``imagenet-captions validate <out>``: check a build's outputs against each other and the rules.

What it checks, without trusting any one file:
- every shard file has the size and the sha256 its shard's manifest entry records (taken by the
  writer as it wrote the file), so a flipped byte is found even where every other check passes; an
  older build's entries have sizes only;
- every tar is complete and readable to its end, ends with the format's two zero blocks, and every
  member is a regular file of our names;
- keys are unique across all shards, valid image ids (no dot), and each sample has exactly the
  members jpg, txt, json, cls;
- each tar matches its Parquet file row for row (same keys in the same order; label, caption and
  the .jpg size agree), and each ``.jpg`` is a whole JPEG (start and end markers; ``--decode``
  decodes every image too);
- ``sizes.json``, ``manifest.json`` and ``report.json`` agree with what is on disk, every shard the
  manifest plans (``num_shards``) exists, and no unfinished write (``*.tmp``) is left anywhere.
Exit status 0 when all hold; 1 with the list of problems otherwise.

A ``match`` output (``matches/NNNNN.parquet``, for a webdataset corpus ``shards/NNNNN.tar``, the
manifest at the top) is checked by the same rules where they apply (:func:`validate_match`): sizes
and sha256 against its manifest, whole tars, each tar row for row with its Parquet file (key, label,
caption, the row's JSON), one image member per sample (the corpus's own format: ``jpg``, ``png`` or
``webp``), unique sample keys, ``sizes.json`` and the report's written pairs. This floor may not
import ``match``, so the layout's two names it needs are spelt out here (a test keeps them equal).

Every file is read through :mod:`imagenet_captions.fsio`, never ``os``, so a build in an object
store (``gs://``, ``s3://``) is validated where it lies, as a local one is.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from imagenet_captions import fsio, layout
from imagenet_captions.classes import parse_image_id
from imagenet_captions.errors import UsageError
from imagenet_captions.manifest import MAX_NESTING, nests_deeper_than
from imagenet_captions.shards.hashfile import HashingReader

MAX_PROBLEMS_SHOWN = 50
#: ``match.plan.MATCHES_DIR``: where a match output's Parquet files are (a test keeps them equal).
MATCHES_DIR = "matches"
#: The image members a match tar's sample may have: the corpus's format, ``jpg`` for a JPEG.
MATCH_IMAGE_EXTENSIONS = ("jpg", "png", "webp")
#: A tar ends with two zero blocks (POSIX); tarfile and our writer then pad to a whole record.
END_BLOCKS = 2 * tarfile.BLOCKSIZE
READ_BUFFER = 1 << 20


class _TarRead:
    """What reading a tar to its end found besides its samples: its sha256 and size, and whether it
    ends with the two zero blocks of the format (tarfile stops quietly at the end of the data)."""

    sha256: str = ""
    size: int = 0
    has_end: bool = False


def _tar_samples(path: str, read: _TarRead | None = None) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {ext: bytes}) in tar order; raises tarfile.TarError/OSError on a broken tar. At the end,
    ``read`` gets the file's digest and end check, from the same one pass over its bytes."""
    current: str | None = None
    members: dict[str, bytes] = {}
    with fsio.open_read(path) as raw:
        hashing = HashingReader(raw)
        f = io.BufferedReader(hashing, READ_BUFFER)
        with tarfile.open(fileobj=f, mode="r:") as tf:
            for m in tf:
                if not m.isfile():
                    raise tarfile.TarError(f"member {m.name!r} is not a regular file")
                key, dot, ext = m.name.partition(".")
                if not dot or "/" in m.name:
                    raise tarfile.TarError(f"member {m.name!r} is not <key>.<ext>")
                data = tf.extractfile(m).read()  # type: ignore[union-attr]  # a regular file (checked above) has a reader
                if len(data) != m.size:
                    raise tarfile.TarError(f"member {m.name!r} is truncated ({len(data)} of {m.size} bytes)")
                if key != current:
                    if current is not None:
                        yield current, members
                    current, members = key, {}
                if ext in members:
                    raise tarfile.TarError(f"member {m.name!r} appears twice")
                members[ext] = data
            end = tf.offset  # where the next header would start: the end blocks, in a whole tar
        if read is not None:
            f.seek(end)
            read.has_end = f.read(END_BLOCKS) == bytes(END_BLOCKS)
            read.sha256, read.size = hashing.finish()
    if current is not None:
        yield current, members


def _check_jpeg(data: bytes, decode: bool) -> str | None:
    if not data.startswith(b"\xff\xd8"):
        return "does not start with a JPEG marker"
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return "has no JPEG end marker (truncated?)"
    if decode:
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
        except Exception as e:  # any decoder failure is a finding, not a crash
            return f"does not decode: {e}"
    return None


def validate_shard(
    tar_path: str, parquet_path: str, decode: bool = False, recorded: dict[str, Any] | None = None
) -> tuple[list[str], list[str]]:
    """(keys in the tar, problems) for one shard and its Parquet file; ``recorded`` is the shard's
    manifest entry, whose sizes and sha256 each file must have."""
    name = fsio.basename(tar_path)
    problems: list[str] = []
    keys: list[str] = []
    samples: list[tuple[str, dict[str, bytes]]] = []
    read = _TarRead()
    try:
        samples = list(_tar_samples(tar_path, read))
    except (tarfile.TarError, OSError, EOFError) as e:
        return [], [f"{name}: unreadable or incomplete tar: {e}"]
    problems += recorded_problems(name, read.sha256, read.size, recorded)
    if not read.has_end:
        problems.append(
            f"{name}: no end-of-archive blocks (two zero blocks of 512 bytes): the tar was cut short"
        )
    for key, members in samples:
        keys.append(key)
        if parse_image_id(key) is None:
            problems.append(f"{name}: key {key!r} is not an ImageNet image id")
        if sorted(members) != sorted(layout.MEMBER_EXTENSIONS):
            problems.append(
                f"{name}: {key} has members {sorted(members)}, expected {list(layout.MEMBER_EXTENSIONS)}"
            )
            continue
        bad = _check_jpeg(members["jpg"], decode)
        if bad:
            problems.append(f"{name}: {key}.jpg {bad}")
    if not fsio.exists(parquet_path):
        return keys, [*problems, f"{name}: no Parquet file {fsio.basename(parquet_path)}"]
    try:
        table, parquet_problems = read_parquet_checked(
            parquet_path, ["key", "label", "caption", "jpg_bytes"], recorded
        )
        rows = table.to_pylist()
    except Exception as e:
        return keys, [*problems, f"{fsio.basename(parquet_path)}: unreadable Parquet: {e}"]
    problems += parquet_problems
    if [r["key"] for r in rows] != keys:
        problems.append(
            f"{name}: Parquet rows ({len(rows)}) do not match the tar's samples ({len(keys)}) in order"
        )
        return keys, problems
    for row, (key, members) in zip(rows, samples, strict=True):
        if set(members) != set(layout.MEMBER_EXTENSIONS):
            continue
        if members["cls"] != str(row["label"]).encode():
            problems.append(f"{name}: {key} .cls {members['cls']!r} != Parquet label {row['label']}")
        if members["txt"] != row["caption"].encode():
            problems.append(f"{name}: {key} .txt differs from the Parquet caption")
        if row["jpg_bytes"] != len(members["jpg"]):
            problems.append(
                f"{name}: {key} .jpg has {len(members['jpg'])} bytes, Parquet says {row['jpg_bytes']}"
            )
        try:
            if json.loads(members["json"])["key"] != key:
                problems.append(f"{name}: {key}.json names another key")
        except (ValueError, KeyError) as e:
            problems.append(f"{name}: {key}.json is not a record: {e}")
    return keys, problems


def recorded_problems(name: str, sha256: str, size: int, recorded: dict[str, Any] | None) -> list[str]:
    """A file's size, then its sha256, against its shard's manifest entry (an older build's entry
    has sizes but no sha256: then only the size is checked)."""
    if not recorded:
        return []
    want_size = recorded.get("sizes", {}).get(name)
    if want_size is not None and want_size != size:
        return [f"{name}: {size} bytes, {layout.MANIFEST_FILE} says {want_size}"]
    want = recorded.get("sha256", {}).get(name)
    if want is not None and want != sha256:
        return [
            f"{name}: sha256 differs from {layout.MANIFEST_FILE}'s: the file changed after it was written"
        ]
    return []


def read_parquet_checked(
    path: str, columns: list[str], recorded: dict[str, Any] | None
) -> tuple[Any, list[str]]:
    """``(table, problems)``: the file is read once, for its rows and for its size and sha256 (a
    shard's Parquet file is text, small enough to hold)."""
    data = fsio.read_bytes(path)
    problems = recorded_problems(fsio.basename(path), hashlib.sha256(data).hexdigest(), len(data), recorded)
    return pq.read_table(pa.BufferReader(data), columns=columns), problems


def _load_json(path: str, problems: list[str]) -> Any:
    if not fsio.isfile(path):
        problems.append(f"missing {fsio.basename(path)}")
        return None
    data = fsio.read_bytes(path)
    if nests_deeper_than(data, MAX_NESTING):  # the parser would recurse to a RecursionError
        problems.append(f"{fsio.basename(path)} is nested more than {MAX_NESTING} levels deep")
        return None
    try:
        return json.loads(data)
    except ValueError as e:  # also bad UTF-8
        problems.append(f"{fsio.basename(path)} is not JSON: {e}")
    return None


def _planned_shards(manifest: Any, names: list[str], text_only: bool) -> list[str]:
    """Problems for each shard the manifest plans whose files are not there: a gap in the numbering
    breaks the ``{00000..N}.tar`` pattern loaders use, and no other check would notice it."""
    num_shards = manifest.get("num_shards") if isinstance(manifest, dict) else None
    if not isinstance(num_shards, int) or isinstance(num_shards, bool) or num_shards < 0:
        return [f"manifest.json: num_shards is {num_shards!r}, not a shard count"]
    present = set(names)
    suffixes = ("parquet",) if text_only else ("tar", "parquet")
    missing = [
        f"{layout.shard_stem(i)}.{suffix}"
        for i in range(num_shards)
        for suffix in suffixes
        if f"{layout.shard_stem(i)}.{suffix}" not in present
    ]
    return [f"shard {m} is planned in manifest.json (num_shards {num_shards}) but missing" for m in missing]


def validate_build(out: str, decode: bool = False) -> tuple[dict[str, Any], list[str]]:
    """(summary, problems) for a build output directory (shards, or a text-only captions table), or
    for a match output (:func:`validate_match`)."""
    if fsio.isdir(fsio.join(out, MATCHES_DIR)):
        return validate_match(out, decode)
    shard_dir = fsio.join(out, layout.SHARD_DIR)
    text_only = not fsio.isdir(shard_dir)
    if text_only:
        shard_dir = fsio.join(out, layout.CAPTIONS_DIR)
    if not fsio.isdir(shard_dir):
        raise UsageError(
            f"{out} holds no {layout.SHARD_DIR}/ or {layout.CAPTIONS_DIR}/ folder: not a build output"
        )
    problems: list[str] = []
    names = fsio.listdir(shard_dir)
    leftovers = [n for n in fsio.walk_files(shard_dir) if fsio.is_temp(n)]
    problems += [f"unfinished file left behind: {n}" for n in leftovers]
    names = [n for n in names if not fsio.is_temp(n)]
    manifest_problems: list[str] = []  # reported after the shards', as the manifest is checked against them
    manifest = _load_json(fsio.join(shard_dir, layout.MANIFEST_FILE), manifest_problems)
    entries = _manifest_entries(manifest, manifest_problems)
    counts: dict[str, int] = {}
    seen: dict[str, str] = {}
    if text_only:
        for n in (n for n in names if n.endswith(".parquet")):
            try:
                table, parquet_problems = read_parquet_checked(
                    fsio.join(shard_dir, n), ["key"], entries.get(n[: -len(".parquet")])
                )
                keys = table.column("key").to_pylist()
            except Exception as e:
                problems.append(f"{n}: unreadable Parquet: {e}")
                continue
            counts[n] = len(keys)
            problems += parquet_problems
            problems += _duplicates(keys, n, seen)
    else:
        tars = [n for n in names if n.endswith(".tar")]
        orphans = {n[: -len(".parquet")] for n in names if n.endswith(".parquet")} - {t[:-4] for t in tars}
        problems += [f"{o}.parquet has no tar" for o in sorted(orphans)]
        for n in tars:
            keys, shard_problems = validate_shard(
                fsio.join(shard_dir, n),
                fsio.join(shard_dir, n[:-4] + ".parquet"),
                decode,
                entries.get(n[:-4]),
            )
            counts[n] = len(keys)
            problems += shard_problems
            problems += _duplicates(keys, n, seen)
    sizes = _load_json(fsio.join(shard_dir, layout.SIZES_FILE), problems)
    if sizes is not None and sizes != counts:
        problems.append(f"sizes.json {sizes} does not match the shards on disk {counts}")
    problems += manifest_problems
    if manifest is not None:
        problems += _planned_shards(manifest, names, text_only)
        listed = sorted(f for e in entries.values() for f in e["files"])
        on_disk = sorted(n for n in names if n.endswith((".tar", ".parquet")))
        if listed != on_disk:
            problems.append(f"manifest.json lists {len(listed)} shard files, {len(on_disk)} are on disk")
    rep = _load_json(fsio.join(out, layout.REPORT_FILE), problems)
    total = sum(counts.values())
    if rep is not None:
        if rep.get("written") != total:
            problems.append(f"report.json says {rep.get('written')} written, the shards hold {total}")
        problems += [f"report.json: {p}" for p in rep.get("accounting_problems", [])]
    summary = {"dir": shard_dir, "shards": len(counts), "samples": total, "text_only": text_only}
    return summary, problems


def _match_sample_key(row: dict[str, Any], multiple: Any) -> str:
    """``match.outputs.sample_key``: the row's key, or under ``--multiple all`` the key and the wnid."""
    return row["key"] if multiple != "all" else f"{row['key']}_{row['wnid']}"


def validate_match_shard(
    out: str, stem: str, entry: dict[str, Any] | None, with_tar: bool, multiple: Any, decode: bool
) -> tuple[list[str], list[str]]:
    """(sample keys, problems) of one match shard: its Parquet file and, with images, its tar."""
    pq_name = f"{MATCHES_DIR}/{stem}.parquet"
    columns = ["key", "wnid", "label", "caption"]
    try:  # its digest first: a changed byte is named as a change, even where it breaks the file
        data = fsio.read_bytes(fsio.join(out, pq_name))
    except OSError as e:
        return [], [f"{pq_name}: unreadable: {e}"]
    problems = recorded_problems(pq_name, hashlib.sha256(data).hexdigest(), len(data), entry)
    try:
        rows = pq.read_table(pa.BufferReader(data), columns=columns).to_pylist()
    except Exception as e:
        return [], [*problems, f"{pq_name}: unreadable Parquet: {e}"]
    keys = [_match_sample_key(r, multiple) for r in rows]
    if not with_tar:
        return keys, problems
    tar_name = f"{layout.SHARD_DIR}/{stem}.tar"
    read = _TarRead()
    try:
        samples = list(_tar_samples(fsio.join(out, tar_name), read))
    except (tarfile.TarError, OSError, EOFError) as e:
        return keys, [*problems, f"{tar_name}: unreadable or incomplete tar: {e}"]
    problems += recorded_problems(tar_name, read.sha256, read.size, entry)
    if not read.has_end:
        problems.append(
            f"{tar_name}: no end-of-archive blocks (two zero blocks of 512 bytes): the tar was cut short"
        )
    if [k for k, _ in samples] != keys:
        problems.append(
            f"{tar_name}: its samples ({len(samples)}) do not match {pq_name}'s rows ({len(rows)}) in order"
        )
        return keys, problems
    for row, (key, members) in zip(rows, samples, strict=True):
        images = [e for e in members if e in MATCH_IMAGE_EXTENSIONS]
        if len(images) != 1 or sorted(set(members) - set(images)) != ["cls", "json", "txt"]:
            problems.append(
                f"{tar_name}: {key} has members {sorted(members)}, expected one image, txt, json, cls"
            )
            continue
        if images == ["jpg"] and (bad := _check_jpeg(members["jpg"], decode)):
            problems.append(f"{tar_name}: {key}.jpg {bad}")
        if members["cls"] != str(row["label"]).encode():
            problems.append(f"{tar_name}: {key} .cls {members['cls']!r} != Parquet label {row['label']}")
        if members["txt"] != row["caption"].encode():
            problems.append(f"{tar_name}: {key} .txt differs from the Parquet caption")
        try:
            fields = json.loads(members["json"])
            if (fields["key"], fields["wnid"]) != (row["key"], row["wnid"]):
                problems.append(f"{tar_name}: {key}.json names another row")
        except (ValueError, KeyError, TypeError) as e:
            problems.append(f"{tar_name}: {key}.json is not the row's fields: {e}")
    return keys, problems


def validate_match(out: str, decode: bool = False) -> tuple[dict[str, Any], list[str]]:
    """(summary, problems) for a ``match`` output: its files against its manifest and each other.

    The manifest is the list of record: each shard it lists must have its files with the sizes and
    sha256 recorded there, every planned shard must be listed, and no shard file may be on disk
    that it does not list."""
    problems = [f"unfinished file left behind: {n}" for n in fsio.walk_files(out) if fsio.is_temp(n)]
    manifest_problems: list[str] = []
    manifest = _load_json(fsio.join(out, layout.MANIFEST_FILE), manifest_problems)
    entries = _manifest_entries(manifest, manifest_problems)
    shard_dir = fsio.join(out, layout.SHARD_DIR)
    with_tars = fsio.isdir(shard_dir)
    options = manifest.get("options") if isinstance(manifest, dict) else None
    rule = options.get("rule") if isinstance(options, dict) else None
    multiple = rule.get("multiple") if isinstance(rule, dict) else None
    counts: dict[str, int] = {}
    seen: dict[str, str] = {}
    for stem in sorted(entries):
        keys, shard_problems = validate_match_shard(out, stem, entries[stem], with_tars, multiple, decode)
        counts[f"{stem}.tar"] = len(keys)
        problems += shard_problems
        problems += _duplicates(keys, stem, seen)
    if with_tars:
        sizes = _load_json(fsio.join(shard_dir, layout.SIZES_FILE), problems)
        if sizes is not None and sizes != counts:
            problems.append(f"shards/sizes.json {sizes} does not match the shards on disk {counts}")
    problems += manifest_problems
    on_disk = sorted(
        f"{folder}/{n}"
        for folder, suffix in (
            (MATCHES_DIR, ".parquet"),
            *([(layout.SHARD_DIR, ".tar")] if with_tars else []),
        )
        for n in fsio.listdir(fsio.join(out, folder))
        if n.endswith(suffix) and not fsio.is_temp(n)
    )
    if manifest is not None:
        names = [fsio.basename(n) for n in on_disk]
        problems += _planned_shards(manifest, names, not with_tars)
        listed = sorted(f for e in entries.values() for f in e["files"])
        if listed != on_disk:
            extra = sorted(set(on_disk) - set(listed)) or sorted(set(listed) - set(on_disk))
            problems.append(
                f"manifest.json lists {len(listed)} shard files, {len(on_disk)} are on disk (first differing: {extra[0]})"
            )
    rep = _load_json(fsio.join(out, layout.REPORT_FILE), problems)
    total = sum(counts.values())
    if isinstance(rep, dict):
        written = rep.get("written")
        pairs = written.get("pairs") if isinstance(written, dict) else None
        if pairs != total:
            problems.append(f"report.json says {pairs} pairs written, the shards hold {total}")
        problems += [f"report.json: {p}" for p in rep.get("accounting_problems", [])]
    elif rep is not None:
        problems.append("report.json is not a JSON object")
    summary = {"dir": out, "shards": len(counts), "samples": total, "text_only": not with_tars}
    return summary, problems


def _manifest_entries(manifest: Any, problems: list[str]) -> dict[str, dict[str, Any]]:
    """The manifest's shard entries (stem -> entry) that have the shape a build writes; a problem
    for the manifest, or each entry, that does not (a hand-edited or damaged file is a finding)."""
    if manifest is None:
        return {}
    shards = manifest.get("shards") if isinstance(manifest, dict) else None
    if not isinstance(shards, dict):
        problems.append(f"{layout.MANIFEST_FILE}: no shards table: not a build manifest")
        return {}
    entries = {}
    for stem, entry in shards.items():
        files = entry.get("files") if isinstance(entry, dict) else None
        if (
            isinstance(files, list)
            and all(isinstance(f, str) for f in files)
            and all(isinstance(entry.get(k, {}), dict) for k in ("sizes", "sha256"))
        ):
            entries[stem] = entry
        else:
            problems.append(f"{layout.MANIFEST_FILE}: the entry of shard {stem} is not a shard entry")
    return entries


def _duplicates(keys: list[str], shard: str, seen: dict[str, str]) -> list[str]:
    problems = []
    for key in keys:
        if key in seen:
            problems.append(f"key {key} is in {seen[key]} and {shard}")
        else:
            seen[key] = shard
    return problems


def compare_with_release(out: str, manifest: dict[str, Any]) -> tuple[int, list[str]]:
    """``(shards equal to the publisher's, problems)``: each shard's tar and Parquet file of the build
    ``out`` against the sha256 and size the release manifest records for the publisher's build.

    What proves a rebuild from a text release equal to the publisher's, file by file, without the
    publisher's tars: equal hashes mean byte-identical shards."""
    shard_dir = fsio.join(out, layout.SHARD_DIR)
    matches = fsio.join(out, MATCHES_DIR)
    parquet_dir = matches if fsio.isdir(matches) else shard_dir  # a match output keeps them apart
    equal, problems = 0, []
    for stem, entry in sorted(manifest["shards"].items()):
        files = [(parquet_dir, f"{stem}.parquet", entry["parquet"])]
        if entry.get("tar"):
            files.insert(0, (shard_dir, f"{stem}.tar", entry["tar"]))
        differs = []
        for folder, name, want in files:
            path = fsio.join(folder, name)
            if not fsio.isfile(path):
                differs.append(f"{name} is missing")
                continue
            sha, size = fsio.sha256_file(path)
            if (sha, size) != (want["sha256"], want["size"]):
                differs.append(f"{name} differs ({size} bytes, the publisher's {want['size']})")
        if differs:
            problems.append(f"shard {stem} is not the publisher's: {'; '.join(differs)}")
        else:
            equal += 1
    return equal, problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="a build output directory (the --out of build), or a match output")
    parser.add_argument("--decode", action="store_true", help="also decode every image (slow)")
    parser.add_argument(
        "--against",
        metavar="MANIFEST",
        help="a release's manifest.json (or its folder): say of each shard whether it equals the publisher's",
    )


def run(args: argparse.Namespace, extra: list[str]) -> int:
    summary, problems = validate_build(args.out, args.decode)
    if args.against:
        from imagenet_captions.manifest import read_manifest

        equal, differ = compare_with_release(args.out, read_manifest(args.against))
        print(f"{equal} of {equal + len(differ)} shards equal to the publisher's ({args.against})")
        problems += differ
    for p in problems[:MAX_PROBLEMS_SHOWN]:
        print(f"PROBLEM {p}")
    if len(problems) > MAX_PROBLEMS_SHOWN:
        print(f"... and {len(problems) - MAX_PROBLEMS_SHOWN} more problems")
    state = "OK" if not problems else f"{len(problems)} problems"
    print(f"{state}: {summary['shards']} shards, {summary['samples']} samples in {summary['dir']}")
    return 0 if not problems else 1
