"""The paper's figure: accuracy under shift against ImageNet accuracy, on logit-scaled axes.

One panel per shift (and one for the mean of the five), in the style of Taori et al. and Fang et al.:
the testbed's models as points coloured by type, the standard line (solid) and the
with-low-accuracy line (dashed), ``y = x`` for reference, and the evaluated model as a star. Axes
are in logit space with ticks labelled in percent, so the baseline trend is a straight line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from imagenet_captions.eval import SHIFTS
from imagenet_captions.eval.robustness import BASELINES, Y_COLUMN, fit, logit, testbed_models

if TYPE_CHECKING:
    from matplotlib.axes import Axes

TITLES = {
    "imagenet-v2": "ImageNetV2",
    "imagenet-sketch": "ImageNet-Sketch",
    "imagenet-r": "ImageNet-R",
    "imagenet-a": "ImageNet-A",
    "objectnet": "ObjectNet",
    "mean": "Mean of the five shifts",
}
TYPE_STYLE = {  # testbed model type -> (legend label, colour)
    "STANDARD": ("Standard training", "tab:blue"),
    "LOW_ACCURACY_CNN": ("Lower-accuracy ImageNet models", "tab:gray"),
    "ROBUST_INTV": ("Robustness intervention", "tab:brown"),
    "MORE_DATA": ("Trained with more data", "tab:green"),
}
LINE_STYLE = {"standard": ("tab:red", "-"), "with-low-accuracy": ("tab:orange", "--")}
TICKS = [1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99]


def _percent_ticks(ax: Axes, lo: float, hi: float, axis: str) -> None:
    ticks = [t for t in TICKS if lo <= t / 100 <= hi]
    locs = logit(np.array(ticks) / 100)
    if axis == "x":
        ax.set_xticks(locs, [str(t) for t in ticks])
    else:
        ax.set_yticks(locs, [str(t) for t in ticks])


def plot_robustness(result: Mapping, path: str, model_label: str = "this model") -> None:
    """Draw the panels for the shifts in ``result`` (the dict of ``effective_robustness``) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shifts = [s for s in (*SHIFTS, "mean") if s in result["model"]]
    if not shifts:  # effective_robustness refuses such a result; a hand-made one gets a clear error
        raise ValueError("the result has no shifted set to plot")
    cols = min(3, len(shifts))
    rows = math.ceil(len(shifts) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.6 * rows), squeeze=False)
    models = testbed_models()
    for ax, shift in zip(axes.flat, shifts, strict=False):
        entry = result["model"][shift]
        x_col = entry["x_column"]
        xs, ys, kinds = [], [], []
        # Show the baselines from a little below the model (or 15%) up: near chance the points say
        # nothing about the trend and squeeze the region that matters.
        x_floor = min(0.15, 0.8 * entry["x"])
        for m in models:
            x = m.acc.get(x_col, math.nan)
            if shift == "mean":
                y = float(np.mean([m.acc[Y_COLUMN[s]] for s in SHIFTS]))
            else:
                y = m.acc.get(Y_COLUMN[shift], math.nan)
            if np.isfinite(x) and np.isfinite(y) and m.nat_model_type in TYPE_STYLE and x >= x_floor:
                xs.append(x)
                ys.append(y)
                kinds.append(m.nat_model_type)
        xs_a, ys_a, kinds_a = np.array(xs), np.array(ys), np.array(kinds)
        for kind, (label, colour) in TYPE_STYLE.items():
            sel = kinds_a == kind
            ax.scatter(logit(xs_a[sel]), logit(ys_a[sel]), s=12, color=colour, alpha=0.55, label=label, lw=0)
        all_x = np.append(xs_a, entry["x"])
        all_y = np.append(ys_a, entry["y"])
        x_lo, x_hi = max(all_x.min() * 0.9, 0.005), min(all_x.max() + 0.02, 0.995)
        y_lo, y_hi = max(all_y.min() * 0.8, 0.003), min(all_y.max() + 0.05, 0.995)
        grid = np.linspace(logit(x_lo), logit(x_hi), 200)
        ax.plot(grid, grid, color="black", ls=":", lw=1, label="y = x")
        for baseline in BASELINES:
            f = fit(shift, baseline, x_col != "val")
            colour, style = LINE_STYLE[baseline]
            for i, line in enumerate(f.lines):
                lo, hi = logit(line.domain[0] + 1e-6), logit(line.domain[1] - 1e-6)
                g = grid[(grid >= lo) & (grid <= hi)]
                ax.plot(
                    g,
                    line.slope * g + line.intercept,
                    color=colour,
                    ls=style,
                    lw=2,
                    label=f"{baseline} fit" if i == 0 else None,
                )
        er = entry["er"][result["baseline"]]
        ax.scatter(
            logit(entry["x"]),
            logit(entry["y"]),
            marker="*",
            s=260,
            color="tab:purple",
            edgecolor="black",
            zorder=10,
            label=model_label,
        )
        ax.text(
            0.03,
            0.96,
            f"ER ({result['baseline']}): {100 * er:+.1f} pts",
            transform=ax.transAxes,
            va="top",
            fontsize=9,
            bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
        )
        ax.set_xlim(logit(x_lo), logit(x_hi))
        ax.set_ylim(logit(y_lo), logit(y_hi))
        _percent_ticks(ax, x_lo, x_hi, "x")
        _percent_ticks(ax, y_lo, y_hi, "y")
        ax.grid(color="lightgray", lw=0.8)
        x_name = "ImageNet (class-subsampled)" if x_col != "val" else "ImageNet"
        ax.set_xlabel(f"{x_name} top-1 (%)")
        ax.set_ylabel(f"{TITLES[shift]} top-1 (%)")
        ax.set_title(TITLES[shift])
    for ax in list(axes.flat)[len(shifts) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
