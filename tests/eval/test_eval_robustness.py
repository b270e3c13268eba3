"""Effective robustness: the fits (leave-one-out), published models, the command and the plot."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from imagenet_captions.cli import main
from imagenet_captions.errors import UsageError
from imagenet_captions.eval import SHIFTS
from imagenet_captions.eval import robustness as R

ALL = (*SHIFTS, "mean")
#: Mean |leave-one-out residual| (accuracy points) each standard line must stay under: how far a
#: held-out standard model falls from the line fitted on the others (measured: 0.33, 2.02, 1.89,
#: 1.56, 1.36, 1.26).
LOO_BOUND = {
    "imagenet-v2": 0.6,
    "imagenet-sketch": 2.5,
    "imagenet-r": 2.5,
    "imagenet-a": 2.0,
    "objectnet": 2.0,
}
LOO_BOUND["mean"] = 1.6

# Published accuracies from Radford et al. 2021 (CLIP), Figure 13: zero-shot CLIP ViT-L/14@336px and
# the ImageNet-trained ResNet-101 of the same ImageNet accuracy (76.2%), on the five shifts.
CLIP_L14_336 = {
    "imagenet": 0.762,
    "imagenet-v2": 0.701,
    "imagenet-sketch": 0.602,
    "imagenet-r": 0.889,
    "objectnet": 0.723,
    "imagenet-a": 0.771,
}
RESNET101 = {
    "imagenet": 0.762,
    "imagenet-v2": 0.643,
    "imagenet-sketch": 0.252,
    "imagenet-r": 0.377,
    "objectnet": 0.326,
    "imagenet-a": 0.027,
}


def _testbed_accuracies(name: str) -> dict[str, float]:
    m = next(m for m in R.testbed_models() if m.name == name)
    acc = {"imagenet": m.acc["val"]}
    acc.update({s: m.acc[R.Y_COLUMN[s]] for s in SHIFTS})
    acc.update(
        {
            "imagenet@imagenet-r": m.acc["val-on-imagenet-r-classes"],
            "imagenet@imagenet-a": m.acc["val-on-imagenet-a-classes"],
            "imagenet@objectnet": m.acc["val-on-objectnet-classes"],
        }
    )
    return acc


def test_testbed_table_and_standard_line_membership() -> None:
    models = R.testbed_models()
    assert len(models) == 338
    v2 = R.baseline_points("imagenet-v2", "standard", "val")
    assert len(v2) == 85 and all(x >= 0.55 for _, x, _ in v2)
    names = {n for n, _, _ in v2}
    assert "resnet50" in names and "resnet50_aws_baseline" not in names
    a = R.baseline_points("imagenet-a", "standard", "val-on-imagenet-a-classes")
    assert "resnet50" not in {n for n, _, _ in a}  # ImageNet-A was filtered against it
    low = R.baseline_points("imagenet-v2", "with-low-accuracy", "val")
    assert len(low) > len(v2) and min(x for _, x, _ in low) < 0.3


@pytest.mark.parametrize("shift", ALL)
def test_standard_lines_leave_one_out(shift: str) -> None:
    res = np.array(list(R.loo_residuals(shift, "standard").values()))
    assert len(res) >= 80
    assert 100 * np.abs(res).mean() < LOO_BOUND[shift]
    assert abs(100 * res.mean()) < 0.5  # no systematic offset


@pytest.mark.parametrize("baseline", R.BASELINES)
@pytest.mark.parametrize("shift", ALL)
def test_logit_space_fits_beat_linear_space_fits_out_of_sample(shift: str, baseline: str) -> None:
    """Taori et al.'s reason for the logit axes, checked on the shipped table by leave-one-out."""
    f = R.fit(shift, baseline)
    linear_res = []
    for line in f.lines:
        pts = [p for p in R.baseline_points(shift, baseline, f.x_column) if p[0] in set(line.models)]
        x = np.array([p[1] for p in pts])
        y = np.array([p[2] for p in pts])
        for i in range(len(x)):
            keep = np.arange(len(x)) != i
            slope, intercept = np.polyfit(x[keep], y[keep], 1)
            linear_res.append(y[i] - (slope * x[i] + intercept))
    logit_res = np.array(list(R.loo_residuals(shift, baseline).values()))
    assert np.abs(logit_res).mean() < np.abs(np.array(linear_res)).mean()


def test_imagenet_a_is_piecewise_at_resnet50() -> None:
    f = R.fit("imagenet-a")
    assert f.pivot == pytest.approx(0.9186) and len(f.lines) == 2
    below, above = f.lines
    assert below.x_range[1] < 0.9186 <= above.x_range[0]
    assert above.slope > 2 * below.slope  # the knee the piecewise fit exists for
    assert f.line_for(0.90) is below and f.line_for(0.95) is above
    assert R.fit("imagenet-a", use_subset_x=False).pivot == pytest.approx(0.7613)


def test_published_resnet101_is_on_the_line_and_zero_shot_clip_far_above() -> None:
    """Radford et al.'s Figure 13: same ImageNet accuracy, CLIP far more robust; ResNet-101 on the trend."""
    rn = R.effective_robustness(RESNET101)["effective_robustness"]
    clip = R.effective_robustness(CLIP_L14_336)["effective_robustness"]
    for shift in ALL:
        assert abs(rn[shift]) < 0.03, shift  # within the leave-one-out noise of a standard model
    assert clip["imagenet-v2"] == pytest.approx(0.061, abs=0.01)
    assert clip["imagenet-r"] > 0.45 and clip["imagenet-a"] > 0.6 and clip["mean"] > 0.35
    for shift in ALL:
        assert clip[shift] > rn[shift] + 0.05


@pytest.mark.parametrize("name", ["resnet50_clip_zeroshot", "vit_b_32_clip_zeroshot"])
def test_testbeds_own_zero_shot_clip_rows_have_positive_effective_robustness(name: str) -> None:
    result = R.effective_robustness(_testbed_accuracies(name))
    er = result["effective_robustness"]
    assert set(er) == set(ALL)
    assert all(v > 0.04 for v in er.values())
    assert not any("no 'imagenet@" in n for n in result["notes"])
    # Both lines are reported; at ~60% ImageNet accuracy they agree within a few points.
    low = result["effective_robustness_by_baseline"]["with-low-accuracy"]
    assert all(abs(low[s] - er[s]) < 0.05 for s in ALL)


def test_a_standard_model_has_near_zero_effective_robustness() -> None:
    er = R.effective_robustness(_testbed_accuracies("resnet152"))["effective_robustness"]
    assert all(abs(v) < 0.05 for v in er.values())


def test_low_accuracy_models_extrapolate_the_standard_line_with_warnings() -> None:
    acc = {"imagenet": 0.40, "imagenet-v2": 0.33, "imagenet@imagenet-r": 0.6, "imagenet-r": 0.2}
    result = R.effective_robustness(acc)
    assert set(result["effective_robustness"]) == {"imagenet-v2", "imagenet-r"}
    warned = " ".join(result["warnings"])
    assert "imagenet-v2" in warned and "standard line" in warned and "extrapolates" in warned
    assert "with-low-accuracy" not in warned  # 40% is inside the lower-accuracy line's range
    assert any("mean: skipped" in n for n in result["notes"])
    assert result["model"]["imagenet-r"]["x_column"] == "val-on-imagenet-r-classes"


def test_fallback_to_full_imagenet_accuracy_is_said() -> None:
    result = R.effective_robustness({"imagenet": 0.7, "objectnet": 0.3})
    assert result["model"]["objectnet"]["x_column"] == "val"
    assert any("objectnet: no 'imagenet@objectnet'" in n for n in result["notes"])
    assert result["fit"]["standard"]["objectnet"]["x"] == "val"


def test_bad_accuracies_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="fractions"):
        R.effective_robustness({"imagenet": 76.1, "imagenet-v2": 63.0})
    with pytest.raises(UsageError, match="'imagenet'"):
        R.effective_robustness({"imagenet-v2": 0.6})


def test_robustness_command_writes_json_and_plot(tmp_path: Path) -> None:
    acc = tmp_path / "acc.json"
    acc.write_text(json.dumps({**CLIP_L14_336, "details": {"anything": 1}}))
    out, png = tmp_path / "er.json", tmp_path / "er.png"
    rc = main(["eval", "robustness", "--accuracies", str(acc), "--out", str(out), "--plot", str(png)])
    assert rc == 0
    result = json.loads(out.read_text())
    assert set(result["effective_robustness"]) == set(ALL)
    fit = result["fit"]["standard"]
    assert set(fit) == set(ALL) and "pieces" in fit["imagenet-a"] and "slope" in fit["imagenet-v2"]
    assert set(result["fit"]) == {"standard", "with-low-accuracy"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    acc.write_text("[1, 2]")
    assert main(["eval", "robustness", "--accuracies", str(acc)]) == 2
    acc.write_text('{"imagenet": "high"}')
    assert main(["eval", "robustness", "--accuracies", str(acc)]) == 2


def test_logit_helpers_are_inverse() -> None:
    p = np.array([0.01, 0.3, 0.5, 0.97])
    assert np.allclose(R.inv_logit(R.logit(p)), p)
    assert math.isfinite(float(R.logit(0.0))) and math.isfinite(float(R.logit(1.0)))


def test_eval_never_imports_beam_and_robustness_needs_no_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, imagenet_captions.eval.command, imagenet_captions.eval.robustness, imagenet_captions.eval.plot\n"
        "assert 'torch' not in sys.modules, 'torch'\n"
        "import imagenet_captions.eval.evaluate, imagenet_captions.testing.eval_bench\n"
        "assert not [m for m in sys.modules if m.startswith('apache_beam')], 'beam'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("plot", [False, True])
def test_robustness_without_a_shift_is_one_line_and_exit_2(tmp_path: Path, capsys, plot: bool) -> None:
    """ImageNet alone has nothing to measure robustness on: said in one line, never an empty result."""
    acc = tmp_path / "acc.json"
    acc.write_text(json.dumps({"imagenet": 0.41, "imagenet@imagenet-r": 0.5, "details": {}}))
    out, png = tmp_path / "er.json", tmp_path / "er.png"
    argv = ["eval", "robustness", "--accuracies", str(acc), "--out", str(out)]
    rc = main([*argv, "--plot", str(png)] if plot else argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "needs ImageNet and at least one shifted set" in err[0] and "acc.json has only imagenet" in err[0]
    assert not out.exists() and not png.exists()


def test_robustness_reads_the_nulls_eval_writes(tmp_path: Path) -> None:
    """``eval`` writes null for an accuracy over no images; ``eval robustness`` reads it as absent."""
    acc = tmp_path / "acc.json"
    acc.write_text(json.dumps({"imagenet": 0.41, "imagenet-v2": 0.35, "imagenet@imagenet-r": None}))
    out = tmp_path / "er.json"
    assert main(["eval", "robustness", "--accuracies", str(acc), "--out", str(out)]) == 0
    assert set(json.loads(out.read_text())["effective_robustness"]) == {"imagenet-v2"}
