"""The 1,000 ILSVRC-2012 classes: wnids, names and the label order (sorted wnids)."""

from __future__ import annotations

import functools
import json
import re
from importlib import resources

#: A WordNet id: ``n`` and 8 ASCII digits, exactly. ``\A``/``\Z`` rather than ``^``/``$`` (``$`` also
#: matches before a final newline) and ``[0-9]`` under re.ASCII rather than ``\d`` (any Unicode digit:
#: Arabic-Indic, fullwidth...), so ``WNID_RE.match`` and ``fullmatch`` agree and accept only this form.
WNID_RE = re.compile(r"\An[0-9]{8}\Z", re.ASCII)
#: An ImageNet image id, the key of every record (and the stem of a tar member's name): the wnid,
#: ``_``, then the image's number in canonical decimal (1 to 9 ASCII digits, no leading zero), so one
#: image has one key (``_01`` and ``_1`` would be two) and ``int()`` of it is always cheap and safe.
#: The one definition of the package: every reader of ids calls :func:`parse_image_id`.
IMAGE_ID_RE = re.compile(r"\A(n[0-9]{8})_(0|[1-9][0-9]{0,8})\Z", re.ASCII)


@functools.lru_cache(maxsize=1)
def class_index() -> list[tuple[str, str]]:
    """[(wnid, name)] in label order; label i is the i-th wnid in sorted order."""
    raw = json.loads(
        resources.files("imagenet_captions.data").joinpath("imagenet_class_index.json").read_text()
    )
    pairs = [tuple(raw[str(i)]) for i in range(len(raw))]
    assert [w for w, _ in pairs] == sorted(w for w, _ in pairs), "class index must be in sorted wnid order"
    return pairs


@functools.lru_cache(maxsize=1)
def wnid_to_label() -> dict[str, int]:
    return {wnid: i for i, (wnid, _) in enumerate(class_index())}


def wnids() -> list[str]:
    return [w for w, _ in class_index()]


def is_wnid(text: str) -> bool:
    """True when ``text`` is a wnid (see :data:`WNID_RE`)."""
    return WNID_RE.fullmatch(text) is not None


def parse_image_id(stem: str) -> tuple[str, int] | None:
    """(wnid, n) for an ImageNet image id like ``n01440764_10026``; None when it is not one (see
    :data:`IMAGE_ID_RE`: a caller turns None into its named reason, never an exception)."""
    m = IMAGE_ID_RE.fullmatch(stem)
    return (m.group(1), int(m.group(2))) if m else None


class ClassList:
    """The classes a build knows, in label order (sorted wnids): ILSVRC-2012's 1,000 by default, or
    ImageNet-21k's (``--classes all`` or a file). A record or an image of another class is
    ``unknown_class``; ``.cls`` is the class's position in this list, recorded in the manifest."""

    def __init__(self, wnids: list[str] | tuple[str, ...], source: str = "ilsvrc2012"):
        self.wnids = tuple(sorted(set(wnids)))
        self.source = source
        self._labels = {w: i for i, w in enumerate(self.wnids)}

    def __contains__(self, wnid: object) -> bool:
        return wnid in self._labels

    def __len__(self) -> int:
        return len(self.wnids)

    def label(self, wnid: str) -> int:
        return self._labels[wnid]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClassList) and other.wnids == self.wnids

    def __hash__(self) -> int:
        return hash(self.wnids)

    def __reduce__(self) -> tuple:
        return (ClassList, (self.wnids, self.source))

    @property
    def is_ilsvrc(self) -> bool:
        return self.wnids == tuple(wnids())

    def to_manifest(self) -> dict:
        """What the manifest and report record: the list itself unless it is ILSVRC-2012's."""
        return {"source": self.source, "count": len(self.wnids), **({} if self.is_ilsvrc else {"wnids": list(self.wnids)})}


def ilsvrc2012() -> ClassList:
    return ClassList(wnids(), "ilsvrc2012")


def read_class_file(path: str) -> ClassList:
    """A class list file: one wnid per line (anything after the wnid, a name, is ignored; blank lines
    and ``#`` comments are skipped). Its sorted order is the label order."""
    from imagenet_captions.errors import UsageError

    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise UsageError(f"--classes: cannot read {path}: {e.strerror}") from None
    found = []
    for n, line in enumerate(lines, 1):
        word = line.split("#", 1)[0].split()
        if not word:
            continue
        if not is_wnid(word[0]):
            raise UsageError(f"--classes: {path} line {n}: {word[0]!r} is not a wnid (n + 8 digits)")
        found.append(word[0])
    if not found:
        raise UsageError(f"--classes: {path} lists no wnid")
    return ClassList(found, path)
