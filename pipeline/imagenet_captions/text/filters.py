"""Filters as small named steps (after datatrove's ``BaseFilter``): each implements ``filter``, the
base class counts what it kept and dropped, by reason.

``filter(record, changed)`` returns True to keep the record, or False / a reason string to drop it.
Filters that judge one *part* of a record (a camera-file-name title, boilerplate description lines,
machine tags) run in one of three modes: ``keep`` (not built), ``strip`` (remove that part, keep
the record, and add ``<name>_stripped`` to ``changed``) or ``drop`` (drop the record with reason
``<name>``). All filters are off by default: the release filtered nothing.

The counters on each filter are for plain-Python use and tests; a pipeline's report counts drop
reasons from its data (``TextOutcome.reason``), never from these per-worker counters.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections import Counter
from typing import Any, ClassVar

Record = dict[str, Any]


class Filter(ABC):
    """One named filter step. Subclasses implement ``filter``; ``__call__`` counts the outcome."""

    name: ClassVar[str]

    def __init__(self) -> None:
        self.kept = 0
        self.dropped: Counter[str] = Counter()

    @abstractmethod
    def filter(self, record: Record, changed: set[str]) -> bool | str:
        """True to keep ``record``; False (reason: the filter's name) or a reason string to drop it."""

    def __call__(self, record: Record, changed: set[str] | None = None) -> str | None:
        """The drop reason, or None when the record is kept."""
        verdict = self.filter(record, changed if changed is not None else set())
        if verdict is True:
            self.kept += 1
            return None
        reason = self.name if verdict is False else str(verdict)
        self.dropped[reason] += 1
        return reason


class PartFilter(Filter):
    """A filter of one part of a record, in ``strip`` or ``drop`` mode."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        if mode not in ("strip", "drop"):
            raise ValueError(f"mode must be strip or drop, not {mode!r}")
        self.mode = mode

    @abstractmethod
    def strip(self, record: Record) -> bool:
        """Remove the offending part from ``record`` in place; True when something was removed."""

    @abstractmethod
    def matches(self, record: Record) -> bool:
        """True when ``record`` has an offending part."""

    def filter(self, record: Record, changed: set[str]) -> bool | str:
        if self.mode == "drop":
            return not self.matches(record)
        if self.strip(record):
            changed.add(f"{self.name}_stripped")
        return True


# ---- camera file names as titles -------------------------------------------------------------

_EXTENSIONS = r"(?:jpe?g|png|tiff?|gif|bmp|heic|nef|cr2|crw|arw|orf|raf|rw2|dng|raw|avi|mov|mp4)"
#: Titles a camera or phone gave the file: IMG_4711, DSC00023, DSCN1234, P1010123, _MG_1234,
#: 100_1234 (Kodak), 20120512_134501 (phones), PXL_20210101_123456789, with an optional copy suffix
#: ("IMG_4711 (2)", "DSC_0012-1") and extension. A bare number ("1984") is NOT one: it can be a
#: real title.
CAMERA_FILENAME_RE = re.compile(
    r"^(?:"
    r"(?:img|_mg|_dsc|dsc[nf_]?|dscf|dcp|dcim|pict?|cimg|sdc|imgp|hpim|kif|mvc|pxl|vid|pano|wp|photo|image"
    r"|dji|gopr|mvi|p)[_\- ]?\d{3,}(?:[_\-]\d+)*"
    r"|\d{3}[_\-]\d{4}"
    r"|\d{8}[_\-]\d{6}(?:[_\-]\d+)?"
    r")(?:\s*\(\d+\)|[_\-]\d+)?(?:\." + _EXTENSIONS + r")?$",
    re.IGNORECASE,
)
#: Any one-word file name with an image extension ("holiday-01.jpg", "scan.tif").
FILE_NAME_RE = re.compile(r"^[\w\-]+\." + _EXTENSIONS + r"$", re.IGNORECASE)


def is_camera_filename(title: str) -> bool:
    """True for a title that is a camera or phone file name rather than words of its owner."""
    t = title.strip()
    if not t or len(t) > 64:
        return False
    return CAMERA_FILENAME_RE.match(t) is not None or FILE_NAME_RE.match(t) is not None


class CameraFilenameFilter(PartFilter):
    name = "camera_filename"

    def matches(self, record: Record) -> bool:
        return is_camera_filename(record["title"])

    def strip(self, record: Record) -> bool:
        if is_camera_filename(record["title"]):
            record["title"] = ""
            return True
        return False


# ---- boilerplate descriptions ----------------------------------------------------------------

#: Lines of a description that say how or by whom it was uploaded, or assert rights, rather than
#: what is in the photo. Matched case-insensitively at the start of a line (or as the whole line).
BOILERPLATE_PATTERNS: tuple[str, ...] = (
    r"uploaded (?:with|by|via|from|using)\b.*",
    r"(?:sent|posted|shared|taken) (?:from|with|via|using) (?:my |an? )?(?:iphone|ipad|android|phone|mobile|blackberry|nokia|samsung|flickr|instagram|camera|lumia|galaxy).*",
    r"(?:copyright|\(c\)|©|℗)\s*(?:\d{4}|all rights reserved|by\b).*",
    r"all rights reserved\.?.*",
    r"(?:please )?(?:do not|don'?t) (?:use|copy|reproduce|download).*(?:permission|consent).*",
    r"(?:no|not for) (?:use|reproduction|commercial use).*without .*permission.*",
    r"(?:this|the) (?:image|photo|picture) (?:is|was) (?:protected|copyrighted).*",
    r"(?:original|full[- ]size|larger?|high[- ]res(?:olution)?) (?:image|version|size|photo)?\s*(?:at|on|here)\b.*",
    r"(?:view|see) (?:it )?(?:large|larger|on black|on fluidr|in lightbox)\b.*",
    r"(?:follow|find|visit) (?:me|us) (?:on|at)\b.*",
    r"(?:photo|image|picture)s? (?:by|from|courtesy of) \S.*",
    r"created with (?:flickr|picnik|photoshop|lightroom|snapseed|vsco|instagram).*",
    r"(?:flickr ?(?:mobile|uploadr|app)|flickr for (?:iphone|android)).*",
    r"auto[- ]?uploaded\b.*",
)
_BOILERPLATE_RE = re.compile(r"^\s*(?:" + "|".join(BOILERPLATE_PATTERNS) + r")\s*$", re.IGNORECASE)


def boilerplate_lines(description: str) -> list[bool]:
    """For each line of ``description``: is it boilerplate?"""
    return [
        bool(line.strip()) and _BOILERPLATE_RE.match(line) is not None for line in description.split("\n")
    ]


class BoilerplateFilter(PartFilter):
    name = "boilerplate"

    def matches(self, record: Record) -> bool:
        return any(boilerplate_lines(record["description"]))

    def strip(self, record: Record) -> bool:
        desc = record["description"]
        if not desc:
            return False
        flags = boilerplate_lines(desc)
        if not any(flags):
            return False
        lines = [line for line, bad in zip(desc.split("\n"), flags, strict=True) if not bad]
        record["description"] = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
        return True


# ---- machine tags ----------------------------------------------------------------------------

#: Flickr machine tags: ``namespace:predicate=value`` (geo:lat=52.5, upload:by=flickrmobile,
#: camera:make=canon). Flickr also lowercases and strips them as ``namespacepredicatevalue``, but
#: that form is indistinguishable from a word, so only the structured form is matched.
MACHINE_TAG_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*:[A-Za-z0-9_]+=.*$")


def is_machine_tag(tag: str) -> bool:
    return MACHINE_TAG_RE.match(tag) is not None


class MachineTagFilter(PartFilter):
    name = "machine_tags"

    def matches(self, record: Record) -> bool:
        return any(":" in t and is_machine_tag(t) for t in record["tags"])

    def strip(self, record: Record) -> bool:
        tags = record["tags"]
        if not any(":" in t for t in tags):
            return False
        kept = [t for t in tags if not is_machine_tag(t)]
        if len(kept) != len(tags):
            record["tags"] = kept
            return True
        return False


# ---- record filters (need the caption and language) ------------------------------------------


class EmptyTextFilter(Filter):
    """No title, no tags and no description left (after cleaning and any stripping)."""

    name = "empty_text"

    def filter(self, record: Record, changed: set[str]) -> bool | str:
        return bool(record["title"] or record["tags"] or record["description"])


class LanguageFilter(Filter):
    """The caption's language must be in an allow list, identified with at least ``min_score``."""

    name = "lang_not_allowed"

    def __init__(self, allow: tuple[str, ...], min_score: float = 0.0) -> None:
        super().__init__()
        self.allow = frozenset(allow)
        self.min_score = min_score

    def filter(self, record: Record, changed: set[str]) -> bool | str:
        lang = record.get("lang")
        if lang is None:
            return "lang_unknown"
        if lang not in self.allow:
            return "lang_not_allowed"
        if (record.get("lang_score") or 0.0) < self.min_score:
            return "lang_low_confidence"
        return True


class LengthFilter(Filter):
    """Caption length (characters) within ``[min_chars, max_chars]``."""

    name = "length"

    def __init__(self, min_chars: int = 0, max_chars: int | None = None) -> None:
        super().__init__()
        self.min_chars = min_chars
        self.max_chars = max_chars

    def filter(self, record: Record, changed: set[str]) -> bool | str:
        n = len(record["caption"])
        if n < self.min_chars:
            return "too_short"
        if self.max_chars is not None and n > self.max_chars:
            return "too_long"
        return True


_WORD_RE = re.compile(r"\w+")


class BlocklistFilter(Filter):
    """Drop a record whose caption contains a blocked word or phrase (whole words, case-folded).

    Matching is by word n-grams against a set, so the cost is linear in the caption and does not
    grow with the size of the blocklist (a regex alternation of 10,000 words would).
    """

    name = "blocklist"

    def __init__(self, entries: tuple[str, ...]) -> None:
        super().__init__()
        self.phrases: set[tuple[str, ...]] = set()
        for entry in entries:
            words = tuple(_WORD_RE.findall(entry.casefold()))
            if words:
                self.phrases.add(words)
        self.words = frozenset(p[0] for p in self.phrases if len(p) == 1)
        #: the first word of every phrase (a phrase cannot match where its first word is absent)
        firsts = sorted({p[0] for p in self.phrases})
        self.substrings: list[str] | None = firsts if len(firsts) <= 64 else None
        self.max_len = max((len(p) for p in self.phrases), default=0)

    def filter(self, record: Record, changed: set[str]) -> bool | str:
        if not self.phrases:
            return True
        caption = record["caption"].casefold()
        # A short list is first tested as substrings (fast, C): no substring, no whole-word match.
        if self.substrings is not None and not any(w in caption for w in self.substrings):
            return True
        words = _WORD_RE.findall(caption)
        if not self.words.isdisjoint(words):
            return False
        phrases = self.phrases
        for n in range(2, self.max_len + 1):
            for i in range(len(words) - n + 1):
                if tuple(words[i : i + n]) in phrases:
                    return False
        return True
