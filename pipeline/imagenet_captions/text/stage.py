"""The text stage of one record, as plain Python: clean, strip, caption, language, filter.

``TextStage(options).process(raw)`` does it all. It is split in two so that a step needing a group
(one owner's duplicate descriptions) can sit between the halves without cleaning or identifying a
language twice: ``prepare`` (clean the fields, part filters) and ``finish`` (caption, language,
record filters). The Beam layer (``beam.py``) is a thin wrapper around these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from imagenet_captions.text.caption import make_caption
from imagenet_captions.text.clean import clean_field, is_clean, redact_decoded
from imagenet_captions.text.filters import (
    BlocklistFilter,
    BoilerplateFilter,
    CameraFilenameFilter,
    EmptyTextFilter,
    Filter,
    LanguageFilter,
    LengthFilter,
    MachineTagFilter,
    PartFilter,
)
from imagenet_captions.text.lang import LangBackend, make_backend
from imagenet_captions.text.options import TextOptions

#: The columns a text record has (the lead's build adds ``label`` and the image columns).
RECORD_COLUMNS = (
    "key",
    "wnid",
    "photo_id",
    "license",
    "title",
    "description",
    "tags",
    "caption",
    "lang",
    "lang_score",
)

LangResult = tuple[str, float] | None


@dataclass(frozen=True)
class TextOutcome:
    """What became of one record: the record (None when dropped), the drop reason, the names of the
    steps that changed it, its key (also for dropped records), and the languages of the fields named
    in ``TextOptions.lang_fields`` (for the report)."""

    record: dict[str, Any] | None
    reason: str | None
    changed: tuple[str, ...] = ()
    key: str = ""
    langs: Mapping[str, LangResult] = field(default_factory=dict)


def _as_text(value: Any) -> str:
    """A field value as a string: None is empty; anything else (a number from a sloppy JSON) is str()."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    return str(value)


def _as_tags(value: Any) -> list[str]:
    """Tags as a list of strings: None is none; one string is one tag; other items are str()."""
    if type(value) is list and all(type(t) is str for t in value):
        return value
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [_as_text(t) for t in value]
    return [_as_text(value)]


def _as_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class TextStage:
    """The whole text stage for one record at a time; holds the options, filters and backend."""

    def __init__(self, options: TextOptions | None = None) -> None:
        self.options = options or TextOptions()
        o = self.options
        self.part_filters: list[PartFilter] = []
        if o.camera_titles != "keep":
            self.part_filters.append(CameraFilenameFilter(o.camera_titles))
        if o.boilerplate != "keep":
            self.part_filters.append(BoilerplateFilter(o.boilerplate))
        if o.machine_tags != "keep":
            self.part_filters.append(MachineTagFilter(o.machine_tags))
        self.record_filters: list[Filter] = []
        if o.drop_empty:
            self.record_filters.append(EmptyTextFilter())
        if o.blocklist:
            self.record_filters.append(BlocklistFilter(o.blocklist))
        if o.min_caption_chars > 0 or o.max_caption_chars is not None:
            self.record_filters.append(LengthFilter(o.min_caption_chars, o.max_caption_chars))
        if o.lang_allow:
            self.record_filters.append(LanguageFilter(o.lang_allow, o.lang_min_score))
        self._backend: LangBackend | None = None
        self._backend_ready = False
        self._report_fields = tuple(f for f in o.lang_fields if f != "caption")

    @property
    def backend(self) -> LangBackend | None:
        """The language backend, made on first use (so a pickled stage loads its model on the worker)."""
        if not self._backend_ready:
            o = self.options
            self._backend = make_backend(o.lang_backend, o.lang_seed, o.lang_max_chars)
            self._backend_ready = True
        return self._backend

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_backend"], state["_backend_ready"] = None, False
        return state

    # ---- the two halves ----

    def prepare(self, raw: Mapping[str, Any]) -> tuple[dict[str, Any] | None, TextOutcome | None, set[str]]:
        """Clean one raw record and apply the part filters.

        Returns ``(record, None, changed)`` with the cleaned fields (no caption yet), or
        ``(None, dropped_outcome, changed)`` when a part filter in ``drop`` mode dropped it.
        """
        key = raw.get("key")
        if not isinstance(key, str) or not key:
            raise ValueError(f"a raw text record needs a string 'key', got {key!r}")
        changed: set[str] = set()
        title = _as_text(raw.get("title"))
        tags = _as_tags(raw.get("tags"))
        # One check for the title and all tags together (most records need no cleaning at all):
        # " | " joins them so that an empty tag or a space at a field's edge shows as a double space.
        one_line = " | ".join([title, *tags] if title else tags)
        redact = self.options.redactor
        if one_line and (not is_clean(one_line) or (redact is not None and redact(one_line) != one_line)):
            title = clean_field(title, changed=changed, redact=redact)
            tags = [clean_field(t, changed=changed, redact=redact) for t in tags]
            if not all(tags):
                tags = [t for t in tags if t]
                changed.add("empty_tags")
        record: dict[str, Any] = {
            "key": key,
            "wnid": _as_text(raw.get("wnid")),
            "photo_id": _as_int(raw.get("photo_id")),
            "license": _as_text(raw["license"]) if raw.get("license") is not None else None,
            "title": title,
            "description": clean_field(_as_text(raw.get("description")), keep_newlines=True, changed=changed,
                                       redact=redact),
            "tags": tags,
        }
        if redact is not None and record["license"]:  # kept as written, so hidden as written and decoded
            record["license"] = redact_decoded(record["license"], redact, changed)
        for f in self.part_filters:
            reason = f(record, changed)
            if reason is not None:
                return None, TextOutcome(None, reason, tuple(sorted(changed)), key), changed
        return record, None, changed

    def finish(self, record: dict[str, Any], changed: set[str] | frozenset[str] = frozenset()) -> TextOutcome:
        """Caption, language and record filters for a prepared record."""
        o = self.options
        changed = set(changed)
        record["caption"] = make_caption(
            record["title"], record["tags"], record["description"], o.caption_style, o.caption_max_words
        )
        langs: dict[str, LangResult] = {}
        backend = self.backend
        if backend is not None:
            result = backend.identify(record["caption"]) if record["caption"] else None
            langs["caption"] = result
            record["lang"], record["lang_score"] = result if result is not None else (None, None)
            for name in self._report_fields:
                text = " ".join(record["tags"]) if name == "tags" else record[name]
                langs[name] = backend.identify(text) if text else None
        else:
            record["lang"], record["lang_score"] = None, None
        key = record["key"]
        for f in self.record_filters:
            reason = f(record, changed)
            if reason is not None:
                return TextOutcome(None, reason, tuple(sorted(changed)), key, langs)
        return TextOutcome(record, None, tuple(sorted(changed)), key, langs)

    def process(self, raw: Mapping[str, Any]) -> TextOutcome:
        """The whole stage for one raw record (no owner grouping: see ``beam.CleanText`` for that)."""
        record, dropped, changed = self.prepare(raw)
        if record is None:
            assert dropped is not None
            return dropped
        return self.finish(record, changed)
