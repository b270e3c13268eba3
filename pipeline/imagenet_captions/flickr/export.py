"""Compare a harvest with the official release: export the store in the release JSON format, and a
diff report against a release file (photos gone since, titles/descriptions/tags changed, new tags).

The diff is the reason to refresh: it says how much of the 2022 text still stands. Texts are
compared after collapsing whitespace; tags by Flickr's normalised form (lower case, letters and
digits only, as in a tag's ``_content``), since a release may hold either the raw or the
normalised spelling, and that difference is not a change made by the owner.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from imagenet_captions import fsio
from imagenet_captions.errors import UsageError
from imagenet_captions.flickr import store
from imagenet_captions.flickr.release_json import ReleaseFormatError, iter_release_items

RELEASE_FIELDS = ("filename", "title", "tags", "description", "wnid")


def export_release(
    responses_dir: str, path: str, as_of: datetime | None = None, redact: Callable[[str], str] | None = None
) -> int:
    """Write the store's ``ok`` images as a release-format JSON list (the five release fields, sorted
    by image id), to a temporary name then renamed; scrubbed of the keys ``redact`` knows. Returns
    the number of records."""
    n = 0
    with fsio.atomic_write(path) as f:
        f.write(b"[")
        for record in store.iter_release_records(responses_dir, as_of, redact):
            f.write(b",\n" if n else b"\n")
            f.write(json.dumps({k: record[k] for k in RELEASE_FIELDS}, ensure_ascii=False).encode("utf-8"))
            n += 1
        f.write(b"\n]\n")
    return n


def normalise_tag(tag: str) -> str:
    """Flickr's normalised tag (``_content``): lower case, letters and digits only."""
    return "".join(ch for ch in tag.lower() if ch.isalnum())


def _norm_text(text: Any) -> str:
    return re.sub(r"\s+", " ", str(text or "")).strip()


def iter_release_file(path: str) -> Iterator[Any]:
    """Stream the items of a release JSON list or zip, read as the build reads one
    (:func:`.release_json.iter_release_items`: a BOM dropped, invalid UTF-8 replaced, nesting
    bounded)."""
    try:
        yield from iter_release_items(path)
    except OSError as e:
        raise UsageError(f"cannot read release file {path}: {e.strerror}") from None
    except ReleaseFormatError as e:
        reason = str(e).removeprefix(f"{path}: ")
        raise UsageError(f"release file {path} is not a JSON list of records: {reason}") from None


def diff_release(
    responses_dir: str,
    release_path: str,
    as_of: datetime | None = None,
    examples: int = 20,
    redact: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """What changed between a release file and the store (as of ``as_of``), per image id.

    Every release record lands in exactly one of: ``gone`` (the photo is now not found),
    ``failed``, ``not_harvested`` (its image is not in the store), ``malformed``, or ``ok``; the
    ``ok`` ones are further counted as ``unchanged`` or by what changed."""
    # Statuses without the JSON, then the parsed records of the ok ones (never all raw answers).
    answers = store.effective_answers(responses_dir, as_of, with_raw=False)
    by_image = {iid: a for a in answers.values() for iid in a.image_ids}
    current = {
        (os.path.splitext(r["filename"])[0], r["photo_id"]): r
        for r in store.iter_release_records(responses_dir, as_of, redact)
    }
    counts: Counter = Counter()
    samples: dict[str, list[dict[str, Any]]] = {}
    new_tag_freq: Counter = Counter()
    seen: set[str] = set()

    def example(kind: str, item: dict[str, Any]) -> None:
        lst = samples.setdefault(kind, [])
        if len(lst) < examples:
            lst.append(item)

    for rec in iter_release_file(release_path):
        counts["release_records"] += 1
        if not isinstance(rec, dict) or not str(rec.get("filename", "")).strip():
            counts["malformed"] += 1
            continue
        image_id = os.path.splitext(str(rec["filename"]))[0]
        seen.add(image_id)
        a = by_image.get(image_id)
        if a is None:
            counts["not_harvested"] += 1
            continue
        if a.status == "not_found":
            counts["gone"] += 1
            example("gone", {"image_id": image_id, "photo_id": a.photo_id, "title": rec.get("title")})
            continue
        if a.status != "ok":
            counts["failed"] += 1
            continue
        counts["ok"] += 1
        now = current[(image_id, a.photo_id)]
        changed = False
        for field in ("title", "description"):
            if _norm_text(rec.get(field)) != _norm_text(now[field]):
                counts[f"{field}_changed"] += 1
                example(
                    f"{field}_changed", {"image_id": image_id, "release": rec.get(field), "now": now[field]}
                )
                changed = True
        before = {normalise_tag(str(t)) for t in rec.get("tags") or []} - {""}
        after = {normalise_tag(t) for t in now["tags"]} - {""}
        if before != after:
            counts["tags_changed"] += 1
            changed = True
            added, removed = sorted(after - before), sorted(before - after)
            if added:
                counts["with_new_tags"] += 1
                counts["new_tags_total"] += len(added)
                new_tag_freq.update(added)
            counts["removed_tags_total"] += len(removed)
            example("tags_changed", {"image_id": image_id, "added": added, "removed": removed})
        counts["changed" if changed else "unchanged"] += 1
    only_in_store = sorted(iid for iid, a in by_image.items() if a.status == "ok" and iid not in seen)
    counts["only_in_store"] = len(only_in_store)
    keys = (
        "release_records",
        "ok",
        "unchanged",
        "changed",
        "title_changed",
        "description_changed",
        "tags_changed",
        "with_new_tags",
        "new_tags_total",
        "removed_tags_total",
        "gone",
        "failed",
        "not_harvested",
        "malformed",
        "only_in_store",
    )
    return {
        "release": os.path.abspath(release_path),
        "store": os.path.abspath(responses_dir),
        "as_of": None if as_of is None else as_of.isoformat(),
        "counts": {k: counts.get(k, 0) for k in keys},
        "top_new_tags": new_tag_freq.most_common(examples),
        "examples": samples,
    }


def write_diff(report: dict[str, Any], path: str) -> None:
    fsio.write_json_atomic(path, report)
