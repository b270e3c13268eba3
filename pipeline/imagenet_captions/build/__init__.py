"""The build: metadata (a release file, a harvested response store or a text release) + ImageNet
images -> WebDataset shards and Parquet, or a text-only captions table.

Where to look: ``plan.py`` decides what a build will do (options, shard count, parts), ``work.py``
holds each unit of work as a plain function (read and clean a part, list images, write a shard),
``graph.py`` is the Beam graph that runs them, and ``command.py`` is the command line. Each stage's
own logic lives in its package (``sources``, ``text``, ``images``, ``shards``); the build composes.

The contract every stage keeps: it yields what it keeps or a :class:`~imagenet_captions.outcomes.Drop`
with a named reason, and every input is counted once in ``report.json``.
"""

from imagenet_captions.build.command import print_summary, run_build
from imagenet_captions.build.plan import BuildConfig, BuildPlan, make_plan
from imagenet_captions.outcomes import IMAGES, RECORDS
from imagenet_captions.shards.join import join_shard

__all__ = [
    "IMAGES",
    "RECORDS",
    "BuildConfig",
    "BuildPlan",
    "join_shard",
    "make_plan",
    "print_summary",
    "run_build",
]
