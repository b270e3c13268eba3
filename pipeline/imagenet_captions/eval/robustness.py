"""Effective robustness (Taori et al., 2020) against the imagenet-testbed's baseline models.

A model's *effective robustness* on a shift is its accuracy there minus what the baseline trend
predicts from its ImageNet accuracy. The trend is a least-squares line in logit space
(``logit(acc) = log(acc / (1 - acc))`` on both axes) over the testbed's standard ImageNet models,
because in logit space those models fall on a line (Taori et al.; Miller et al., 2021). We follow the
testbed's plotting code (modestyachts/imagenet-testbed, ``plotting/paper_*.py``) for which models
count and which x each shift uses:

- x is ImageNet val accuracy; for ImageNet-R, -A and ObjectNet it is val accuracy restricted to that
  shift's classes (``val-on-<shift>-classes``), because those shifts score only a class subset.
- the *standard* line fits models of type STANDARD (no ``aws``/``batch64``/``subsample`` in the name)
  at or above the testbed's plot cut-off (val >= 55%, or subset val >= 75% for R and A, >= 55% for
  ObjectNet), excluding ResNet-50 on ImageNet-A (ImageNet-A was filtered against it, so it scores 0).
- ImageNet-A gets the testbed's piecewise fit: one line below ResNet-50's accuracy on A's classes
  (91.86%), another above it.

Models trained on ImageNet-Captions sit at 30-55% ImageNet accuracy, below the standard models'
range, so a second baseline (*with-low-accuracy*) adds the testbed's LOW_ACCURACY_CNN models
(ResNets stopped early or trained on image subsets) and drops the accuracy cut-off. Both lines are
always reported, and a prediction outside the x range a line was fitted on is flagged.
"""

from __future__ import annotations

import csv
import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from imagenet_captions.errors import UsageError
from imagenet_captions.eval import SHIFTS, SUBSET_KEYS

TESTBED_CSV = "imagenet_testbed_natural_shift_top1.csv"
BASELINES: tuple[str, ...] = ("standard", "with-low-accuracy")
#: The testbed's columns for each of our keys (accuracies there are percentages).
Y_COLUMN: dict[str, str] = {
    "imagenet-v2": "imagenetv2-matched-frequency-format-val",
    "imagenet-sketch": "imagenet-sketch",
    "imagenet-r": "imagenet-r",
    "imagenet-a": "imagenet-a",
    "objectnet": "objectnet-1.0-beta",
}
SUBSET_X_COLUMN: dict[str, str] = {
    "imagenet-r": "val-on-imagenet-r-classes",
    "imagenet-a": "val-on-imagenet-a-classes",
    "objectnet": "val-on-objectnet-classes",
}
#: The testbed's show_in_plot cut-off on x (%), by x column.
X_CUTOFF: dict[str, float] = {
    "val": 55.0,
    "val-on-imagenet-r-classes": 75.0,
    "val-on-imagenet-a-classes": 75.0,
    "val-on-objectnet-classes": 55.0,
}
#: ImageNet-A's piecewise fit breaks at ResNet-50's accuracy (%), by x column (testbed ``pivot``).
A_PIVOT: dict[str, float] = {"val-on-imagenet-a-classes": 91.86, "val": 76.13}
#: Lower-accuracy models below this ImageNet val accuracy (%) stay out of the with-low-accuracy line:
#: there several shifts sit at chance (ImageNet-A at ~1%) and no longer follow the logit-linear trend.
LOW_ACCURACY_MIN_VAL = 10.0
#: Logits of 0% and 100% are infinite; clip as a ratio of correct images would never reach them.
_EPS = 1e-4
#: A model within a twentieth of a point of the fitted range is inside it (table values are rounded).
_RANGE_TOL = 5e-4


def logit(p: np.ndarray | float) -> np.ndarray:
    """log(p / (1 - p)) of accuracies as fractions, clipped away from 0 and 1."""
    q = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    return np.log(q / (1 - q))


def inv_logit(z: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=float)))


@dataclass(frozen=True)
class BaselineModel:
    """One row of the testbed table, accuracies as fractions (NaN where the testbed has none)."""

    name: str
    model_type: str
    nat_model_type: str
    acc: Mapping[str, float]


@functools.lru_cache(maxsize=1)
def testbed_models() -> tuple[BaselineModel, ...]:
    """The 338 models of the shipped testbed table (see ``eval/data/SOURCES.md``)."""
    text = resources.files("imagenet_captions.eval").joinpath("data", TESTBED_CSV).read_text()
    models = []
    for row in csv.DictReader(text.splitlines()):
        acc = {}
        for column, value in row.items():
            if column in (
                "model",
                "model_type",
                "nat_model_type",
                "standard_line_fit_candidate",
                "low_accuracy_cnn",
            ):
                continue
            acc[column] = float(value) / 100.0 if value not in ("", None) else math.nan
        models.append(BaselineModel(row["model"], row["model_type"], row["nat_model_type"], acc))
    return tuple(models)


@dataclass(frozen=True)
class Line:
    """``logit(y) = slope * logit(x) + intercept`` over ``n`` models with x in ``x_range``."""

    slope: float
    intercept: float
    r: float
    n: int
    x_range: tuple[float, float]
    models: tuple[str, ...] = field(repr=False)
    #: Only for piecewise fits: the part of the x axis this line covers (fractions).
    domain: tuple[float, float] = (0.0, 1.0)

    def predict(self, x: np.ndarray | float) -> np.ndarray:
        return inv_logit(self.slope * logit(x) + self.intercept)

    def to_json(self) -> dict:
        return {
            "slope": self.slope,
            "intercept": self.intercept,
            "r": self.r,
            "n_models": self.n,
            "x_range": list(self.x_range),
            "domain": list(self.domain),
        }


def fit_line(
    x: np.ndarray, y: np.ndarray, names: Iterable[str] = (), domain: tuple[float, float] = (0.0, 1.0)
) -> Line:
    """Ordinary least squares of logit(y) on logit(x) (what the testbed's ``linregress`` does)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 3:
        raise ValueError(f"a line needs at least 3 models, got {x.size}")
    lx, ly = logit(x), logit(y)
    slope, intercept = np.polyfit(lx, ly, 1)
    r = float(np.corrcoef(lx, ly)[0, 1])
    return Line(
        float(slope), float(intercept), r, int(x.size), (float(x.min()), float(x.max())), tuple(names), domain
    )


@dataclass(frozen=True)
class Fit:
    """The baseline trend for one shift: one line, or two joined at a pivot (ImageNet-A)."""

    shift: str
    baseline: str
    x_column: str
    y_column: str
    lines: tuple[Line, ...]
    pivot: float | None = None

    def line_for(self, x: float) -> Line:
        if self.pivot is None or x < self.pivot:
            return self.lines[0]
        return self.lines[1]

    def predict(self, x: float) -> float:
        return float(self.line_for(x).predict(x))

    @property
    def x_range(self) -> tuple[float, float]:
        return (min(ln.x_range[0] for ln in self.lines), max(ln.x_range[1] for ln in self.lines))

    def to_json(self) -> dict:
        out: dict[str, Any] = {"x": self.x_column, "y": self.y_column, "transform": "logit"}
        if self.pivot is None:
            out.update(self.lines[0].to_json())
        else:
            out["pivot"] = self.pivot
            out["pieces"] = [ln.to_json() for ln in self.lines]
        return out


def _y_value(model: BaselineModel, shift: str) -> float:
    if shift == "mean":
        values = [model.acc.get(Y_COLUMN[s], math.nan) for s in SHIFTS]
        return float(np.mean(values)) if all(np.isfinite(values)) else math.nan
    return model.acc.get(Y_COLUMN[shift], math.nan)


def _is_standard(model: BaselineModel, shift: str, x_column: str) -> bool:
    name = model.name.lower()
    # The testbed types ImageNet-R and -Sketch with model_types_map, the others with the natural-shift
    # map; the two agree on which models are STANDARD, but follow it anyway.
    kind = model.model_type if shift in ("imagenet-r", "imagenet-sketch") else model.nat_model_type
    if kind != "STANDARD" or any(s in name for s in ("aws", "batch64", "subsample")):
        return False
    return not (shift == "imagenet-a" and name == "resnet50")


def baseline_points(shift: str, baseline: str, x_column: str) -> list[tuple[str, float, float]]:
    """(name, x, y) of the models a line is fitted on, accuracies as fractions."""
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; expected one of {BASELINES}")
    cutoff = X_CUTOFF[x_column] / 100.0
    points = []
    for m in testbed_models():
        x, y = m.acc.get(x_column, math.nan), _y_value(m, shift)
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        standard = _is_standard(m, shift, x_column)
        if baseline == "standard":
            keep = standard and x >= cutoff
        else:
            low = m.nat_model_type == "LOW_ACCURACY_CNN" and m.acc["val"] >= LOW_ACCURACY_MIN_VAL / 100.0
            keep = standard or low
        if keep:
            points.append((m.name, x, y))
    return points


def x_column_for(shift: str, use_subset_x: bool) -> str:
    return SUBSET_X_COLUMN[shift] if use_subset_x and shift in SUBSET_X_COLUMN else "val"


@functools.lru_cache(maxsize=64)
def fit(shift: str, baseline: str = "standard", use_subset_x: bool = True) -> Fit:
    """The baseline trend for ``shift`` ("mean" for the mean of the five shifts)."""
    x_column = x_column_for(shift, use_subset_x)
    points = baseline_points(shift, baseline, x_column)
    y_column = "mean(" + ", ".join(Y_COLUMN[s] for s in SHIFTS) + ")" if shift == "mean" else Y_COLUMN[shift]
    if shift != "imagenet-a":
        names, xs, ys = zip(*points, strict=True)
        return Fit(shift, baseline, x_column, y_column, (fit_line(np.array(xs), np.array(ys), names),))
    pivot = A_PIVOT[x_column] / 100.0
    lines = []
    for below in (True, False):
        part = [p for p in points if (p[1] < pivot) == below]
        names, xs, ys = zip(*part, strict=True)
        domain = (0.0, pivot) if below else (pivot, 1.0)
        lines.append(fit_line(np.array(xs), np.array(ys), names, domain))
    return Fit(shift, baseline, x_column, y_column, tuple(lines), pivot)


def loo_residuals(shift: str, baseline: str = "standard", use_subset_x: bool = True) -> dict[str, float]:
    """Leave-one-out residuals (accuracy fractions): each baseline model against the fit without it.

    How far a held-out standard model falls from the line is the noise floor against which an
    effective robustness has to be read.
    """
    f = fit(shift, baseline, use_subset_x)
    out: dict[str, float] = {}
    for line in f.lines:
        pts = {n: (x, y) for n, x, y in baseline_points(shift, baseline, f.x_column) if n in set(line.models)}
        names = list(pts)
        xs = np.array([pts[n][0] for n in names])
        ys = np.array([pts[n][1] for n in names])
        for i, name in enumerate(names):
            mask = np.arange(len(names)) != i
            held = fit_line(xs[mask], ys[mask])
            out[name] = float(ys[i] - held.predict(xs[i]))
    return out


def _resolve(accuracies: Mapping[str, float], key: str) -> float | None:
    value = accuracies.get(key)
    if value is None:
        return None
    value = float(value)
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise UsageError(f"accuracy {key!r} is {value}; accuracies must be fractions in 0..1")
    return value


def effective_robustness(
    accuracies: Mapping[str, float], primary: str = "standard", source: str = "the accuracies"
) -> dict:
    """Effective robustness of one model from its accuracies (fractions, keys as ``eval`` writes them).

    ImageNet alone is refused (``source`` names the input in that message): with no shifted set
    there is nothing to measure, and an empty result would read as a success. Returns the JSON ``eval robustness`` writes: ``effective_robustness`` (under ``primary``),
    ``effective_robustness_by_baseline``, ``fit`` (coefficients by baseline and shift), ``model``
    (x, y and predictions per shift), ``notes`` and ``warnings``.
    """
    if primary not in BASELINES:
        raise UsageError(f"unknown baseline {primary!r}; expected one of {', '.join(BASELINES)}")
    imagenet = _resolve(accuracies, "imagenet")
    if imagenet is None:
        raise UsageError(
            "the accuracies have no 'imagenet' entry: effective robustness needs ImageNet accuracy"
        )
    notes: list[str] = []
    warnings: list[str] = []
    per_shift: dict[str, dict] = {}
    for shift in (*SHIFTS, "mean"):
        y: float | None
        if shift == "mean":
            ys = [v for v in (_resolve(accuracies, s) for s in SHIFTS) if v is not None]
            if len(ys) < len(SHIFTS):
                notes.append("mean: skipped, it needs all five shifts")
                continue
            y = float(np.mean(ys))
        else:
            y = _resolve(accuracies, shift)
            if y is None:
                continue
        x, use_subset = imagenet, False
        if shift in SUBSET_KEYS:
            sub = _resolve(accuracies, SUBSET_KEYS[shift])
            if sub is None:
                notes.append(
                    f"{shift}: no {SUBSET_KEYS[shift]!r}, so x is full ImageNet accuracy and the fit is "
                    f"against the testbed's 'val' column (the testbed's no-subsample variant)"
                )
            else:
                x, use_subset = sub, True
        entry: dict = {"x": x, "y": y, "x_column": x_column_for(shift, use_subset), "predicted": {}, "er": {}}
        for baseline in BASELINES:
            f = fit(shift, baseline, use_subset)
            pred = f.predict(x)
            entry["predicted"][baseline] = pred
            entry["er"][baseline] = y - pred
            line = f.line_for(x)
            lo, hi = line.x_range
            if not lo - _RANGE_TOL <= x <= hi + _RANGE_TOL:
                warnings.append(
                    f"{shift}: x = {x:.4f} is outside the {baseline} line's fitted range "
                    f"[{lo:.4f}, {hi:.4f}] ({f.x_column}); its prediction extrapolates"
                )
        per_shift[shift] = entry
    if not per_shift:
        raise UsageError(
            f"robustness needs ImageNet and at least one shifted set ({', '.join(SHIFTS)}): "
            f"{source} has only {', '.join(sorted(accuracies))}"
        )
    fits = {
        b: {s: fit(s, b, per_shift[s]["x_column"] != "val").to_json() for s in per_shift} for b in BASELINES
    }
    return {
        "effective_robustness": {s: e["er"][primary] for s, e in per_shift.items()},
        "baseline": primary,
        "effective_robustness_by_baseline": {
            b: {s: e["er"][b] for s, e in per_shift.items()} for b in BASELINES
        },
        "fit": fits,
        "model": per_shift,
        "notes": notes,
        "warnings": warnings,
    }
