"""Readers for ImageNet val and the five shifts, in the layouts they are distributed in.

Each reader returns an :class:`EvalSet`: the image paths, each with the set of ImageNet classes (in
sorted-wnid order) that count as right for it, the classes the logits are cut to before the argmax
(``class_sublist``; None = all 1000), and a border to crop off first (ObjectNet). Every file under
the root is accounted for: scored, or counted in ``skipped`` under a named reason. A root that does
not look like the layout raises :class:`~imagenet_captions.errors.UsageError`.

Layouts (as the archives unpack):

- ImageNet val: ``<root>/<wnid>/*.JPEG`` (folder per class), or the flat ``ILSVRC2012_val_*.JPEG``
  folder with a labels file: Kaggle's ``LOC_val_solution.csv`` or a ``<file> <label>`` text file
  whose label is a wnid or a sorted-order class index (Caffe's ``val.txt``).
- ImageNetV2 MatchedFrequency: ``<root>/<class index 0..999>/*.jpeg``.
- ImageNet-Sketch: ``<root>/<wnid>/*`` (``sketch/`` in the archive).
- ImageNet-R, ImageNet-A: ``<root>/<wnid>/*``, 200 wnids each.
- ObjectNet 1.0: ``objectnet-1.0/images/<folder>/*.png``; only the 113 folders that map to ImageNet
  are scored, the rest are counted as ``objectnet_class_not_in_imagenet``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from imagenet_captions.classes import WNID_RE, wnid_to_label
from imagenet_captions.errors import UsageError
from imagenet_captions.eval import SUBSET_KEYS, subsets

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
OBJECTNET_BORDER = 2
#: Where each dataset is looked for under ``--data-root``, first match wins.
DEFAULT_LOCATIONS: dict[str, tuple[str, ...]] = {
    "imagenet": ("imagenet/val", "val", "ILSVRC2012_img_val", "imagenet-val"),
    "imagenet-v2": (
        "imagenetv2-matched-frequency-format-val",
        "imagenet-v2/imagenetv2-matched-frequency-format-val",
        "imagenet-v2",
        "imagenetv2",
    ),
    "imagenet-sketch": ("imagenet-sketch/sketch", "sketch", "imagenet-sketch"),
    "imagenet-r": ("imagenet-r",),
    "imagenet-a": ("imagenet-a",),
    "objectnet": ("objectnet-1.0/images", "objectnet/images", "objectnet-1.0", "objectnet"),
}


@dataclass
class EvalSet:
    """Images to score, with what counts as right for each."""

    name: str
    root: str
    paths: list[str]
    #: Per image: the ImageNet class indices a prediction may be (one, except for ObjectNet).
    targets: list[tuple[int, ...]]
    class_sublist: list[int] | None = None
    border: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)


# A class folder's name -> its targets (the sorted-order labels that count as right); () for a folder
# of the dataset that maps to no ImageNet class; None for a folder that is not a class of the dataset.
FolderParser = Callable[[str], tuple[int, ...] | None]


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _class_folders(
    root: Path, parse: FolderParser, dataset: str
) -> tuple[list[str], list[tuple[int, ...]], dict[str, int]]:
    """Walk ``root/<class>/...``; ``parse(folder) -> targets or None`` (None: not a class folder)."""
    if not root.is_dir():
        raise UsageError(f"{dataset}: {root} is not a directory")
    paths: list[str] = []
    targets: list[tuple[int, ...]] = []
    skipped: dict[str, int] = {}
    bad_folders = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if not entry.is_dir():
            skipped["not_in_a_class_folder"] = skipped.get("not_in_a_class_folder", 0) + 1
            continue
        target = parse(entry.name)
        n_files = 0
        for dirpath, dirnames, filenames in os.walk(entry.path):
            dirnames.sort()
            for f in sorted(filenames):
                n_files += 1
                if target is None or target == ():
                    continue
                if not _is_image(f):
                    skipped["not_an_image"] = skipped.get("not_an_image", 0) + 1
                    continue
                paths.append(os.path.join(dirpath, f))
                targets.append(target)
        if target is None:
            bad_folders.append(entry.name)
        elif target == ():
            skipped["objectnet_class_not_in_imagenet"] = (
                skipped.get("objectnet_class_not_in_imagenet", 0) + n_files
            )
    if bad_folders:
        shown = ", ".join(bad_folders[:5]) + (" ..." if len(bad_folders) > 5 else "")
        raise UsageError(f"{dataset}: {root} has folders that are not classes of this dataset: {shown}")
    if not paths:
        raise UsageError(f"{dataset}: no images under {root}")
    return paths, targets, skipped


def _wnid_parser(allowed: set[str] | None) -> FolderParser:
    labels = wnid_to_label()

    def parse(folder: str) -> tuple[int, ...] | None:
        if not WNID_RE.match(folder) or folder not in labels:
            return None
        if allowed is not None and folder not in allowed:
            return None
        return (labels[folder],)

    return parse


def read_imagenet_val(root: str | Path, labels_file: str | Path | None = None) -> EvalSet:
    """ImageNet val, as a folder per wnid or as the flat folder plus a labels file."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"imagenet: {root} is not a directory")
    has_class_dirs = any(e.is_dir() and WNID_RE.match(e.name) for e in os.scandir(root))
    if has_class_dirs and labels_file is None:
        paths, targets, skipped = _class_folders(root, _wnid_parser(None), "imagenet")
        return EvalSet("imagenet", str(root), paths, targets, None, 0, skipped)
    labels_path = Path(labels_file) if labels_file else _find_labels_file(root)
    labels = _read_val_labels(labels_path)
    paths, targets, skipped = [], [], {}
    for f in sorted(os.listdir(root)):
        full = root / f
        if full.is_dir() or not _is_image(f):
            skipped["not_an_image"] = skipped.get("not_an_image", 0) + 1
            continue
        stem = os.path.splitext(f)[0]
        if stem not in labels:
            skipped["no_label"] = skipped.get("no_label", 0) + 1
            continue
        paths.append(str(full))
        targets.append((labels[stem],))
    if not paths:
        raise UsageError(f"imagenet: no labelled images in {root} (labels from {labels_path})")
    missing = len(set(labels) - {os.path.splitext(os.path.basename(p))[0] for p in paths})
    if missing:
        skipped["labelled_but_missing"] = missing
    return EvalSet("imagenet", str(root), paths, targets, None, 0, skipped)


def _find_labels_file(root: Path) -> Path:
    for candidate in ("LOC_val_solution.csv", "val.txt", "labels.txt"):
        for folder in (root, root.parent):
            if (folder / candidate).is_file():
                return folder / candidate
    raise UsageError(
        f"imagenet: {root} is neither a folder per wnid nor a flat folder with a labels file "
        "(LOC_val_solution.csv or val.txt beside it, or --imagenet-labels)"
    )


def _read_val_labels(path: Path) -> dict[str, int]:
    """image stem -> class index, from LOC_val_solution.csv or a ``<file> <wnid|index>`` file."""
    if not path.is_file():
        raise UsageError(f"imagenet: labels file {path} does not exist")
    labels = wnid_to_label()
    out: dict[str, int] = {}
    with open(path, newline="") as fh:
        first = fh.readline()
        fh.seek(0)
        if first.startswith("ImageId,"):
            for row in csv.DictReader(fh):
                wnid = row["PredictionString"].split()[0]
                if wnid not in labels:
                    raise UsageError(f"imagenet: {path}: {wnid!r} is not an ILSVRC-2012 wnid")
                out[row["ImageId"]] = labels[wnid]
            return out
        for n, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise UsageError(
                    f"imagenet: {path}:{n}: expected '<file> <wnid or class index>', got {line!r}"
                )
            name, label = parts
            if label in labels:
                value = labels[label]
            elif label.isdigit() and int(label) < 1000:
                value = int(label)
            else:
                raise UsageError(
                    f"imagenet: {path}:{n}: {label!r} is neither a wnid nor a class index 0..999"
                )
            out[os.path.splitext(os.path.basename(name))[0]] = value
    if not out:
        raise UsageError(f"imagenet: labels file {path} is empty")
    return out


def read_imagenet_v2(root: str | Path) -> EvalSet:
    def parse(folder: str) -> tuple[int, ...] | None:
        return (int(folder),) if folder.isdigit() and int(folder) < 1000 else None

    paths, targets, skipped = _class_folders(Path(root), parse, "imagenet-v2")
    return EvalSet("imagenet-v2", str(root), paths, targets, None, 0, skipped)


def read_imagenet_sketch(root: str | Path) -> EvalSet:
    paths, targets, skipped = _class_folders(Path(root), _wnid_parser(None), "imagenet-sketch")
    return EvalSet("imagenet-sketch", str(root), paths, targets, None, 0, skipped)


def read_imagenet_r(root: str | Path) -> EvalSet:
    parse = _wnid_parser(set(subsets.imagenet_r_wnids()))
    paths, targets, skipped = _class_folders(Path(root), parse, "imagenet-r")
    return EvalSet("imagenet-r", str(root), paths, targets, subsets.imagenet_r_indices(), 0, skipped)


def read_imagenet_a(root: str | Path) -> EvalSet:
    parse = _wnid_parser(set(subsets.imagenet_a_wnids()))
    paths, targets, skipped = _class_folders(Path(root), parse, "imagenet-a")
    return EvalSet("imagenet-a", str(root), paths, targets, subsets.imagenet_a_indices(), 0, skipped)


def read_objectnet(root: str | Path) -> EvalSet:
    root = Path(root)
    if (root / "images").is_dir():
        root = root / "images"
    mapping = subsets.objectnet_folder_to_imagenet()
    known = subsets.objectnet_all_folders()

    def parse(folder: str) -> tuple[int, ...] | None:
        if folder in mapping:
            return mapping[folder]
        return () if folder in known else None

    paths, targets, skipped = _class_folders(root, parse, "objectnet")
    return EvalSet(
        "objectnet",
        str(root),
        paths,
        targets,
        subsets.objectnet_imagenet_indices(),
        OBJECTNET_BORDER,
        skipped,
    )


READERS = {
    "imagenet-v2": read_imagenet_v2,
    "imagenet-sketch": read_imagenet_sketch,
    "imagenet-r": read_imagenet_r,
    "imagenet-a": read_imagenet_a,
    "objectnet": read_objectnet,
}
#: ImageNet val restricted to a shift's classes, scored over those classes (the testbed's
#: ``val-on-<shift>-classes``).
SUBSET_CLASSES = {
    SUBSET_KEYS["imagenet-r"]: subsets.imagenet_r_indices,
    SUBSET_KEYS["imagenet-a"]: subsets.imagenet_a_indices,
    SUBSET_KEYS["objectnet"]: subsets.objectnet_imagenet_indices,
}


def locate(data_root: str | Path, name: str, overrides: dict[str, str] | None = None) -> Path | None:
    """The folder of dataset ``name``: an explicit override, else the first default location that exists."""
    if overrides and name in overrides:
        return Path(overrides[name])
    for rel in DEFAULT_LOCATIONS[name]:
        p = Path(data_root) / rel
        if p.is_dir():
            return p
    return None


def read_dataset(name: str, root: str | Path, imagenet_labels: str | None = None) -> EvalSet:
    if name == "imagenet":
        return read_imagenet_val(root, imagenet_labels)
    if name not in READERS:
        raise UsageError(f"unknown dataset {name!r}; expected one of imagenet, {', '.join(READERS)}")
    return READERS[name](root)
