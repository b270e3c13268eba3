"""The class vocabulary of ``match``: which classes, and the terms that name each one.

``load_vocabulary`` resolves ``--names`` (``wordnet``: the WordNet lemmas of each synset as timm
ships them; ``clip``: the 1,000 curated CLIP class names; or a ``wnid<TAB>term, term, ...`` file),
``--classes`` (``ilsvrc2012``, ``all`` the names table's classes, or a class list file, as ``build``
reads it), then ``--exclude-terms`` and ``--unique-terms``. A bad file is one line naming it and its
line (``UsageError``), never a traceback. The result is a frozen value with a digest, so an output
can say exactly which vocabulary matched it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources

from imagenet_captions import classes as class_lists
from imagenet_captions import fsio
from imagenet_captions.errors import UsageError

WORDNET, CLIP = "wordnet", "clip"
#: The names tables shipped in ``imagenet_captions.data`` (data/SOURCES.md gives their sources).
_TABLES = {WORDNET: "imagenet_synset_to_lemma.txt.gz", CLIP: "imagenet_clip_classnames.txt"}


@dataclass(frozen=True)
class Vocabulary:
    """``classes``: sorted wnids (their order is the label order); ``terms_of[wnid]``: the class's
    terms in the order of the names table, each NFC, stripped, non-empty and without a line break
    (the matcher joins captions with ``\\n``, so no term may span two). A class may have no term
    left (all excluded): it is still a class, and never matches."""

    classes: tuple[str, ...]
    terms_of: dict[str, tuple[str, ...]]
    names: str = ""  # where the terms came from, for reports: wordnet, clip or the file's path
    _labels: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if list(self.classes) != sorted(set(self.classes)):
            raise ValueError("Vocabulary.classes must be sorted and unique")
        if set(self.terms_of) != set(self.classes):
            raise ValueError("Vocabulary.terms_of must have exactly one entry per class")
        for wnid, terms in self.terms_of.items():
            for t in terms:
                if not isinstance(t, str) or not t or t != t.strip() or "\n" in t or not _encodable(t):
                    raise ValueError(
                        f"Vocabulary: {wnid} has an empty, padded, multi-line or non-UTF-8 term: {t!r}"
                    )
        object.__setattr__(self, "_labels", {w: i for i, w in enumerate(self.classes)})

    def __hash__(self) -> int:
        return hash(self.digest())

    def label_of(self, wnid: str) -> int:
        """The class's position in ``classes`` (its label); KeyError for a class not in the vocabulary."""
        return self._labels[wnid]

    def name_of(self, wnid: str) -> str:
        """The class's first term (its name in the table), or the wnid when no term is left."""
        terms = self.terms_of[wnid]
        return terms[0] if terms else wnid

    def digest(self) -> str:
        """sha256 of the canonical serialisation: UTF-8 JSON ``[[wnid, [term, ...]], ...]`` in class
        order, each class's terms sorted, no spaces. Two vocabularies that match alike have one digest
        (the terms' order in the table does not change a match)."""
        canon = [[w, sorted(self.terms_of[w])] for w in self.classes]
        text = json.dumps(canon, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def to_manifest(self) -> dict:
        return {
            "names": self.names,
            "classes": len(self.classes),
            "terms": sum(len(t) for t in self.terms_of.values()),
            "digest": self.digest(),
        }


def _encodable(term: str) -> bool:
    """A lone surrogate is no character: no file yields one, and the automaton cannot hold it."""
    try:
        term.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def load_vocabulary(
    names: str, classes: str, unique_terms: bool = False, exclude_terms: str | None = None
) -> Vocabulary:
    """The vocabulary the options ask for. Terms are compared for ``--exclude-terms`` and
    ``--unique-terms`` by ``str.lower()`` (so excluding ``light`` also excludes ``Light``, and
    ``crane`` names two classes whatever the case of each table's spelling)."""
    table = _names_table(names)
    chosen = _class_list(classes, table)
    missing = [w for w in chosen if w not in table]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise UsageError(f"--classes: {len(missing)} class(es) have no terms in --names {names}: {shown}")
    terms_of = {w: table[w] for w in chosen}
    if exclude_terms is not None:
        never = _read_exclude_terms(exclude_terms)
        terms_of = {w: tuple(t for t in ts if t.lower() not in never) for w, ts in terms_of.items()}
    if unique_terms:
        classes_of = Counter(low for ts in terms_of.values() for low in {t.lower() for t in ts})
        terms_of = {w: tuple(t for t in ts if classes_of[t.lower()] == 1) for w, ts in terms_of.items()}
    return Vocabulary(tuple(chosen), terms_of, names)


def _names_table(names: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(names, str) or not names:
        raise UsageError(f"--names must be {WORDNET}, {CLIP} or a file, not {names!r}")
    if names in _TABLES:
        raw = resources.files("imagenet_captions.data").joinpath(_TABLES[names]).read_bytes()
        text = (gzip.decompress(raw) if _TABLES[names].endswith(".gz") else raw).decode("utf-8")
        # CLIP's names are one curated name per class, commas included as written
        return _parse_table(text, f"--names {names}", split_terms=names != CLIP)
    return _parse_table(_read_text("--names", names), f"--names: {names}", split_terms=True)


def _read_text(option: str, path: str) -> str:
    try:
        data = fsio.read_bytes(path)
    except OSError as e:
        raise UsageError(f"{option}: cannot read {path}: {e.strerror or e}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UsageError(f"{option}: {path} is not UTF-8 text (byte {e.start})") from None


def _lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of the lines that carry data: ``\\n`` (or ``\\r\\n``) ends a line, blank
    lines and lines starting with ``#`` are skipped. Only ``\\n`` ends a line, so no term can hold one."""
    out = []
    for n, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if line.strip() and not line.lstrip().startswith("#"):
            out.append((n, line))
    return out


def _term(raw: str) -> str:
    return unicodedata.normalize("NFC", raw).strip()


def _parse_table(text: str, where: str, split_terms: bool) -> dict[str, tuple[str, ...]]:
    table: dict[str, tuple[str, ...]] = {}
    for n, line in _lines(text):
        wnid, tab, rest = line.partition("\t")
        wnid = wnid.strip()
        if not tab:
            raise UsageError(f"{where} line {n}: expected wnid<TAB>term, term, ... (no tab)")
        if not class_lists.is_wnid(wnid):
            raise UsageError(f"{where} line {n}: {wnid[:40]!r} is not a wnid (n + 8 digits)")
        if wnid in table:
            raise UsageError(f"{where} line {n}: {wnid} is listed twice")
        pieces = rest.split(",") if split_terms else [rest]
        terms = tuple(dict.fromkeys(t for t in map(_term, pieces) if t))  # unique, in order
        if not terms:
            raise UsageError(f"{where} line {n}: {wnid} has no term")
        table[wnid] = terms
    if not table:
        raise UsageError(f"{where} lists no class")
    return table


def _class_list(classes: str, table: dict[str, tuple[str, ...]]) -> list[str]:
    if classes == "ilsvrc2012":
        return class_lists.wnids()
    if classes == "all":
        return sorted(table)
    if not isinstance(classes, str) or not classes:
        raise UsageError(f"--classes must be ilsvrc2012, all or a file, not {classes!r}")
    return list(class_lists.read_class_file(classes).wnids)


def _read_exclude_terms(path: str) -> frozenset[str]:
    """One term a line, compared by ``str.lower()``; blank lines and ``#`` lines are skipped."""
    return frozenset(_term(line).lower() for _, line in _lines(_read_text("--exclude-terms", path)))
