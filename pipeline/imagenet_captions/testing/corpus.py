"""A deterministic generator of release-format records at the real scale and shape.

``python -m imagenet_captions.testing.corpus --out corpus.json [--records N] [--seed S]``

The official ``imagenet_captions.json`` is not available here, so the text stage is measured on a
stand-in with the release's *counts* and Flickr's known *messiness*:

* **Counts (exact).** 448,896 records over 999 classes, each class with exactly its count in the
  release (``imagenet_captions/text/data/class_frequency_incaps_imagenet_ori.txt``, from Wen et al.
  2024, see ``text/data/SOURCES.md``); per class exactly the release's number of non-empty titles, tags and
  descriptions (the ``title_only``/``tags_only``/``description_only`` files; totals 443,012 /
  408,671 / 267,848). Where a class's pairwise counts (``no_title``: tags or description, ...) are
  consistent, the overlaps of the three fields match them too; for the ~100 classes where they are
  not, the overlaps come from a correlated ranking instead (marginals stay exact). With
  ``--records N`` the classes are scaled down proportionally (largest remainder), rates kept.
* **Records.** ``{"filename": "<wnid>_<n>.JPEG", "title", "tags", "description", "wnid"}`` as in the
  release, plus an ``owner`` (the release has none; harvested data does, and the owner
  near-duplicate filter needs it). Keys are unique; ``n`` is drawn per class.
* **Languages, by owner** (an owner writes in one language): en 60%, de 7%, fr 6%, es 5%, it 4%,
  nl 3%, pt 3%, ja 2.5%, zh 2%, ru 2%, pl 1.5%, sv 1%, ko 1%, tr 1%, ar 0.5%, he 0.5%. Text is
  assembled from small hand-written vocabularies and sentences per language (below) and the
  class's English name.
* **Mess, in stated proportions of the records that have the field:** titles: 8% camera file names
  (IMG_4711, DSC00023, ...), 1% with HTML entities; tags: 4% of tag lists carry machine tags
  (``geo:lat=``, ``upload:by=flickrmobile``, ...); descriptions: 12% HTML (links with
  ``rel="nofollow"``, ``<br />``, ``<b>``, 0.5% with ``<script>``/``<style>``), 8% entities (of which a
  quarter doubly escaped, ``&amp;quot;``), 6% a boilerplate line ("Uploaded with ...",
  "© 2009 All rights reserved"), 1.5% of non-ASCII descriptions as mojibake (UTF-8 read as
  cp1252), 0.5% zero-width spaces, 0.05% NUL bytes, 0.01% lone surrogates; 10% of owners paste one
  description on every photo they describe (half of those vary it slightly: near-duplicates).
* **Lengths:** short titles, descriptions with a long tail (0.01% of 5-15 kB), a few to a few
  dozen tags per record; the percentiles they come out at after cleaning are measured on the full
  corpus and tabled in ``docs/text.md`` ("The full-scale corpus").

Same ``--seed`` and ``--records``: byte-identical output. Records are written as they are made
(one class at a time), so memory stays flat. The per-class counts are planned in
:mod:`.corpus_plan`; the vocabularies are :mod:`.corpus_vocab`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from imagenet_captions.classes import class_index
from imagenet_captions.testing.corpus_plan import class_plan, regions
from imagenet_captions.testing.corpus_vocab import (
    BOILERPLATE,
    CAMERA_TITLES,
    CAMERAS,
    MACHINE_TAGS,
    PLACES,
    VOCAB,
)

LANG_SHARES: tuple[tuple[str, float], ...] = (
    ("en", 0.60), ("de", 0.07), ("fr", 0.06), ("es", 0.05), ("it", 0.04), ("nl", 0.03), ("pt", 0.03),
    ("ja", 0.025), ("zh", 0.02), ("ru", 0.02), ("pl", 0.015), ("sv", 0.01), ("ko", 0.01), ("tr", 0.01),
    ("ar", 0.005), ("he", 0.005),
)  # fmt: skip
assert abs(sum(share for _, share in LANG_SHARES) - 1.0) < 1e-9
N_OWNERS = 60_000


def _owner_lang(owner: int) -> str:
    h = int.from_bytes(hashlib.blake2b(f"lang{owner}".encode(), digest_size=8).digest(), "big") / 2**64
    acc = 0.0
    for lang, share in LANG_SHARES:
        acc += share
        if h < acc:
            return lang
    return "en"


def _owner_paste(owner: int) -> tuple[str, bool] | None:
    """The description an owner pastes on every photo (10% of owners), and whether they vary it."""
    r = random.Random(f"paste{owner}")
    if r.random() >= 0.10:
        return None
    lang = _owner_lang(owner)
    words, sentences = VOCAB[lang]
    text = " ".join(r.sample(sentences, min(3, len(sentences)))).replace("{c}", words[0])
    text += f" {r.choice(PLACES)} {r.randint(2004, 2011)}."
    return text, r.random() < 0.5


def _title(rng: random.Random, lang: str, cname: str) -> str:
    words, _ = VOCAB[lang]
    u = rng.random()
    if u < 0.08:
        return rng.choice(CAMERA_TITLES).format(n=rng.randint(1, 9999999 if rng.random() < 0.2 else 9999))
    parts = rng.sample(words, rng.randint(1, 3))
    if lang == "en" or rng.random() < 0.3:
        parts.insert(rng.randint(0, len(parts)), cname)
    if rng.random() < 0.2:
        parts.append(rng.choice(PLACES))
    if rng.random() < 0.1:
        parts.append(str(rng.randint(2004, 2011)))
    sep = "" if lang in ("ja", "zh") and rng.random() < 0.7 else " "
    title = sep.join(parts)
    if rng.random() < 0.3:
        title = title[:1].upper() + title[1:]
    if u > 0.99:
        title = title.replace(" ", " &amp; ", 1) if " " in title else title + " &quot;2&quot;"
    return title


def _tags(rng: random.Random, lang: str, cname: str) -> list[str]:
    words, _ = VOCAB[lang]
    n = min(40, max(1, int(rng.lognormvariate(1.9, 0.8))))
    pool = words + cname.lower().split() + [p.lower() for p in PLACES[:6]] + CAMERAS
    tags = [rng.choice(pool) for _ in range(n)]
    if rng.random() < 0.04:
        for _ in range(rng.randint(1, 3)):
            tags.append(
                rng.choice(MACHINE_TAGS).format(
                    lat=round(rng.uniform(-60, 70), 6),
                    lon=round(rng.uniform(-180, 180), 6),
                    cam=rng.choice(CAMERAS),
                    iso=rng.choice((100, 200, 400, 800)),
                )
            )
    return tags


def _mojibake(s: str) -> str:
    try:
        return s.encode("utf-8").decode("cp1252")
    except UnicodeDecodeError:
        return s.encode("utf-8").decode("latin-1")


def _description(rng: random.Random, lang: str, cname: str, owner: int) -> str:
    paste = _owner_paste(owner)
    if paste is not None and rng.random() < 0.9:
        text, varies = paste
        if varies and rng.random() < 0.5:
            text = (
                text.replace(".", "!", 1) if rng.random() < 0.5 else text + " " + rng.choice(VOCAB[lang][0])
            )
        return text
    words, sentences = VOCAB[lang]
    u = rng.random()
    if u < 0.35:
        n_sent = 1
    elif u < 0.99:
        n_sent = 1 + min(30, int(rng.expovariate(0.45)))
    else:
        n_sent = rng.randint(30, 120)
    text = " ".join(rng.choice(sentences) for _ in range(n_sent)).replace("{c}", cname)
    if rng.random() < 0.0001:
        text = "\n".join([text] * rng.randint(20, 80))  # a rare 5-20 kB description
    # ---- mess ----
    if rng.random() < 0.12:
        r = rng.random()
        place = rng.choice(PLACES)
        if r < 0.4:
            text = f'{text}<br />\n<a href="http://www.flickr.com/photos/x/{rng.randint(1, 10**9)}/" rel="nofollow">{place}</a>'
        elif r < 0.7:
            text = text.replace(". ", ".<br /><br />\n", 2)
            text = f"<b>{place}</b> {text}"
        elif r < 0.96:
            text = f'<i>{text}</i> <a href="http://{place.lower()}.example.org">{place}</a>'
        else:
            text += "<script>document.write('x')</script><style>.a{color:red}</style>"
    if rng.random() < 0.08:
        ent = rng.choice(["&amp;", "&quot;", "&#039;", "&nbsp;", "&gt;"])
        if rng.random() < 0.25:
            ent = ent.replace("&", "&amp;", 1)
        text = text.replace(" ", f" {ent} ", 1)
    if rng.random() < 0.06:
        text += "\n\n" + rng.choice(BOILERPLATE).format(y=rng.randint(2004, 2011))
    if not text.isascii() and rng.random() < 0.015:
        text = _mojibake(text)
    if rng.random() < 0.005:
        text = text.replace(" ", "\u200b ", 2)
    if rng.random() < 0.0005:
        text += "\x00"
    if rng.random() < 0.0001:
        text += "\ud800"
    return text


def generate(records: int | None = None, seed: int = 0) -> Iterator[dict[str, Any]]:
    """The corpus, record by record, in class (label) order."""
    classes = class_index()
    for c, p in enumerate(class_plan(records)):
        if p["n"] == 0:
            continue
        wnid, cname = classes[c][0], classes[c][1].replace("_", " ")
        rng = random.Random(f"{seed}:{wnid}")
        kinds = regions(p, rng)
        ids = sorted(rng.sample(range(1, 20 * p["n"] + 2000), p["n"]))
        for n, (has_t, has_g, has_d) in zip(ids, kinds, strict=True):
            # A few very active owners and a long tail: the 60 busiest own ~10% of the records.
            owner = int(N_OWNERS * rng.random() ** 3)
            lang = _owner_lang(owner)
            yield {
                "filename": f"{wnid}_{n}.JPEG",
                "title": _title(rng, lang, cname) if has_t else "",
                "tags": _tags(rng, lang, cname) if has_g else [],
                "description": _description(rng, lang, cname, owner) if has_d else "",
                "wnid": wnid,
                "owner": f"{owner}@N0{owner % 7}",
            }


def write_corpus(out: TextIO, records: int | None = None, seed: int = 0) -> int:
    """Write the corpus as one JSON list (the release's format), a record per line; returns the count."""
    n = 0
    out.write("[")
    for rec in generate(records, seed):
        out.write(",\n" if n else "\n")
        out.write(json.dumps(rec, ensure_ascii=True))
        n += 1
    out.write("\n]\n")
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m imagenet_captions.testing.corpus", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--out", required=True, type=Path, help="output JSON file ('-' for stdout)")
    ap.add_argument(
        "--records", type=int, default=None, help="scale down to about N records (default: 448,896)"
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.records is not None and args.records < 1:
        ap.error("--records must be at least 1")
    if str(args.out) == "-":
        n = write_corpus(sys.stdout, args.records, args.seed)
    else:
        tmp = args.out.with_name(args.out.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            n = write_corpus(f, args.records, args.seed)
        tmp.replace(args.out)
    print(f"wrote {n} records", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
