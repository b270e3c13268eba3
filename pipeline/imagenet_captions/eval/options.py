"""What ``eval`` and ``eval robustness`` do, as frozen values validated once, before any work starts.

Scoring six datasets takes long, and ``eval robustness`` is quick but writes files: a bad value
found at the end (an output folder that does not exist, a plot format matplotlib cannot write)
would waste the run or leave half the outputs. So every value, paths included, is checked when the
options are made, and each mistake is one ``UsageError`` line naming the option. Neither class
imports torch, so ``eval robustness`` still runs without it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagenet_captions.errors import UsageError
from imagenet_captions.eval import DATASETS
from imagenet_captions.options import as_choice, as_int, as_text
from imagenet_captions.train.options import as_device
from imagenet_captions.train.resources import default_workers

#: ``--checkpoint`` of this form names an open_clip model and its weights file.
OPEN_CLIP_PREFIX = "open_clip:"
BASELINES = ("standard", "with-low-accuracy")
#: Formats ``eval robustness --plot`` writes (matplotlib's, without optional backends).
PLOT_FORMATS = (".png", ".pdf", ".svg")


def _output_file(option: str, value: Any) -> str:
    """A file to write: its folder must exist now, so the run does not fail only at its end."""
    path = Path(as_text(option, value))
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"{option}: output folder {folder} does not exist")
    if path.is_dir():
        raise UsageError(f"{option}: {path} is a folder, not a file")
    return str(path)


def _input_file(option: str, value: Any, what: str = "file") -> str:
    path = as_text(option, value)
    if not os.path.isfile(path):
        raise UsageError(f"{option}: {what} not found: {path}")
    return path


def _folder(option: str, value: Any) -> str:
    path = as_text(option, value)
    if not os.path.isdir(path):
        raise UsageError(f"{option}: {path} is not a directory")
    return path


@dataclass(frozen=True)
class EvalOptions:
    """Options of ``imagenet-captions eval``: a model, where the datasets are, how to run."""

    checkpoint: str
    data_root: str
    open_clip_model: str | None = None
    #: Which datasets to score; None: every one found under ``data_root``.
    datasets: tuple[str, ...] | None = None
    #: dataset name -> its folder, overriding the default location under ``data_root``.
    paths: dict[str, str] = field(default_factory=dict)
    imagenet_labels: str | None = None
    out: str = "eval_accuracies.json"
    device: str | None = None
    batch_size: int = 256
    #: File-reading workers: this machine's cores less the main process's, at most 8.
    workers: int = field(default_factory=lambda: min(8, default_workers()))
    limit: int | None = None

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("checkpoint", self._checkpoint())
        if self.open_clip_model is not None:
            put("open_clip_model", as_text("--open-clip-model", self.open_clip_model))
        put("data_root", _folder("--data-root", self.data_root))
        if self.datasets is not None:
            if isinstance(self.datasets, str) or not self.datasets:
                raise UsageError(f"--datasets takes one or more of {', '.join(DATASETS)}")
            put("datasets", tuple(as_choice("--datasets", d, DATASETS) for d in self.datasets))
        for name in self.paths:
            as_choice("--path", name, DATASETS)
        put("paths", {name: _folder(f"--path {name}", folder) for name, folder in self.paths.items()})
        if self.imagenet_labels is not None:
            put("imagenet_labels", _input_file("--imagenet-labels", self.imagenet_labels, "labels file"))
        put("out", _output_file("--out", self.out))
        if self.device is not None:
            put("device", as_device("--device", self.device))
        put("batch_size", as_int("--batch-size", self.batch_size, minimum=1))
        put("workers", as_int("--workers", self.workers, minimum=0))
        if self.limit is not None:
            put("limit", as_int("--limit", self.limit, minimum=1))

    def _checkpoint(self) -> str:
        """Our checkpoint file, or ``open_clip:<model>:<file>``; the file must exist either way."""
        spec = as_text("--checkpoint", self.checkpoint)
        if spec.startswith(OPEN_CLIP_PREFIX):
            name, sep, file = spec[len(OPEN_CLIP_PREFIX) :].partition(":")
            if not sep or not name or not file:
                raise UsageError(f"--checkpoint: expected 'open_clip:<model>:<file>', got {spec!r}")
            _input_file("--checkpoint", file, "open_clip checkpoint")
            return spec
        return _input_file("--checkpoint", spec, "checkpoint")


def parse_paths(items: list[str]) -> dict[str, str]:
    """``--path NAME=DIR`` items as a dict; the names and folders are checked by ``EvalOptions``."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise UsageError(f"--path wants NAME=DIR with NAME one of {', '.join(DATASETS)}, got {item!r}")
        out[name] = folder
    return out


@dataclass(frozen=True)
class RobustnessOptions:
    """Options of ``imagenet-captions eval robustness``."""

    accuracies: str
    out: str | None = None
    plot: str | None = None
    baseline: str = "standard"
    label: str | None = None

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("accuracies", _input_file("--accuracies", self.accuracies, "accuracies file"))
        if self.out is not None:
            put("out", _output_file("--out", self.out))
        if self.plot is not None:
            put("plot", _output_file("--plot", self.plot))
            if Path(self.plot).suffix.lower() not in PLOT_FORMATS:
                raise UsageError(
                    f"--plot must end in one of {', '.join(PLOT_FORMATS)}, not {Path(self.plot).name!r}"
                )
        put("baseline", as_choice("--baseline", self.baseline, BASELINES))
        if self.label is not None:
            put("label", as_text("--label", self.label))
