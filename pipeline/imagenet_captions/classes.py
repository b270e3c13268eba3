"""The 1,000 ILSVRC-2012 classes: wnids, names and the label order (sorted wnids)."""

from __future__ import annotations

import functools
import json
import re
from importlib import resources

WNID_RE = re.compile(r"^n\d{8}$")
#: An ImageNet training image id: <wnid>_<n>. The key of every record.
IMAGE_ID_RE = re.compile(r"^(n\d{8})_(\d+)$")


@functools.lru_cache(maxsize=1)
def class_index() -> list[tuple[str, str]]:
    """[(wnid, name)] in label order; label i is the i-th wnid in sorted order."""
    raw = json.loads(
        resources.files("imagenet_captions.data").joinpath("imagenet_class_index.json").read_text()
    )
    pairs = [tuple(raw[str(i)]) for i in range(len(raw))]
    assert [w for w, _ in pairs] == sorted(w for w, _ in pairs), "class index must be in sorted wnid order"
    return pairs  # type: ignore[return-value]


@functools.lru_cache(maxsize=1)
def wnid_to_label() -> dict[str, int]:
    return {wnid: i for i, (wnid, _) in enumerate(class_index())}


def wnids() -> list[str]:
    return [w for w, _ in class_index()]


def parse_image_id(stem: str) -> tuple[str, int] | None:
    """(wnid, n) for an ImageNet image id like ``n01440764_10026``; None when it is not one."""
    m = IMAGE_ID_RE.match(stem)
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
        if not WNID_RE.match(word[0]):
            raise UsageError(f"--classes: {path} line {n}: {word[0]!r} is not a wnid (n + 8 digits)")
        found.append(word[0])
    if not found:
        raise UsageError(f"--classes: {path} lists no wnid")
    return ClassList(found, path)
