"""Robustness evaluation: zero-shot and linear heads on ImageNet and five natural shifts.

The pieces, each importable on its own (none imports Apache Beam, and only the inference modules
import torch, so ``eval robustness`` runs without a model or a GPU):

- :mod:`~imagenet_captions.eval.subsets`: class subsets of ImageNet-R/-A and the ObjectNet map.
- :mod:`~imagenet_captions.eval.datasets`: readers for each dataset's layout as distributed.
- :mod:`~imagenet_captions.eval.heads`: the zero-shot head and the subset-logit rules.
- :mod:`~imagenet_captions.eval.inference`: batched decode (on the GPU when there is one) and top-1.
- :mod:`~imagenet_captions.eval.robustness`: logit-space fits over the imagenet-testbed baselines and
  effective robustness (Taori et al., 2020).
- :mod:`~imagenet_captions.eval.plot`: the accuracy-on-shift vs ImageNet-accuracy figure.
- :mod:`~imagenet_captions.eval.options`: ``EvalOptions`` and ``RobustnessOptions``, every value
  (paths included) checked before any work starts.
- :mod:`~imagenet_captions.eval.command`: ``imagenet-captions eval`` and ``eval robustness``.

The inference benchmark is ``imagenet_captions.testing.eval_bench``: nothing at run time needs it.
"""

#: Output keys of ``imagenet-captions eval``, in report order.
SHIFTS: tuple[str, ...] = ("imagenet-v2", "imagenet-sketch", "imagenet-r", "imagenet-a", "objectnet")
DATASETS: tuple[str, ...] = ("imagenet", *SHIFTS)
#: ImageNet val accuracy restricted to a shift's classes: the x of that shift's fit.
SUBSET_KEYS: dict[str, str] = {
    "imagenet-r": "imagenet@imagenet-r",
    "imagenet-a": "imagenet@imagenet-a",
    "objectnet": "imagenet@objectnet",
}
