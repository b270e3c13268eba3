"""What this machine gives the loaders: usable cores and shared memory, and the workers that fit them.

Train's ``--workers`` default and the depth of each worker's queue, and eval's file readers, are
sized here, so that neither asks for more than the machine has:

- **Cores.** The cores this process may run on (``os.sched_getaffinity``: a container or
  ``taskset`` gives fewer than ``os.cpu_count``), shared by the ranks ``torchrun`` starts on this
  host, one of them left to each rank's main process (it steps the model or feeds the GPU). At
  least one worker: with zero the main process would read and decode between steps, and one worker
  draws the same batches as zero (see ``train.stream``), so the floor costs nothing in
  reproducibility.
- **Shared memory.** A batch leaves a worker through ``/dev/shm``; every worker keeps ``prefetch``
  batches there. A batch of 512 ImageNet JPEGs is about 51 MB, so 15 workers x 2 batches need about
  1.5 GB, more than a container's default ``/dev/shm`` (64 MB). :func:`fit_workers` lowers the
  queue depth first (it never changes the batches), then, where the caller allows it, the
  workers; otherwise it refuses in one line, before any worker starts, rather than letting a
  worker die of a bus error mid-run.

Never imports torch: the options and ``--help`` stay fast.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from imagenet_captions.errors import UsageError

#: Where DataLoader workers put the batches they hand over (torch's file-descriptor sharing).
SHM_PATH = "/dev/shm"
#: The share of the free shared memory the loaders may plan to fill: other processes use it too.
SHM_SHARE = 0.75
#: Bytes per sample beside the image (tokens or label, key, the batch's bookkeeping).
SAMPLE_OVERHEAD = 1024


def usable_cpus() -> int:
    """The cores this process may run on (its affinity where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows: no affinity call
        return max(1, os.cpu_count() or 1)


def local_ranks() -> int:
    """How many training processes ``torchrun`` started on this host (1 for a plain run)."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def default_workers() -> int:
    """Loader workers per rank when ``--workers`` is not given: this rank's cores, less its own."""
    return max(1, usable_cpus() // local_ranks() - 1)


def free_shared_memory(path: str = SHM_PATH) -> int | None:
    """Bytes free in the shared-memory filesystem; None where there is none to ask."""
    try:
        st = os.statvfs(path)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


@dataclass(frozen=True)
class WorkerPlan:
    """How many workers a loader starts and how many batches each keeps ready, and why."""

    workers: int
    prefetch: int
    #: Shared memory the plan fills at most, and what was free for it (None: not known).
    need_bytes: int
    free_bytes: int | None
    #: Set when the plan is less than was asked, saying what changed and why.
    note: str | None = None


def _mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"


def fit_workers(
    workers: int,
    batch_bytes: int,
    free_bytes: int | None,
    *,
    prefetch: int = 2,
    may_reduce_workers: bool,
    option: str = "--workers",
) -> WorkerPlan:
    """The most of ``workers`` x ``prefetch`` batches of ``batch_bytes`` that fit the shared memory.

    The queue depth goes down first, to one batch per worker. Then, with ``may_reduce_workers``,
    the workers (for an automatic count, or where the count does not change the results); without
    it the call refuses with a :class:`UsageError` naming ``option``, since a training run's
    explicit worker count decides its batches.
    """
    ranks = local_ranks()
    if workers == 0 or free_bytes is None:
        return WorkerPlan(workers, prefetch, workers * prefetch * batch_bytes, free_bytes)
    budget = free_bytes * SHM_SHARE / ranks  # the ranks on this host share it
    for depth in range(prefetch, 0, -1):
        need = workers * depth * batch_bytes
        if need <= budget:
            note = None
            if depth < prefetch:
                note = (
                    f"{workers} workers x {prefetch} batches of {_mb(batch_bytes)} would not fit the "
                    f"{_mb(free_bytes)} free in {SHM_PATH}: each worker keeps {depth} batch ready"
                )
            return WorkerPlan(workers, depth, need, free_bytes, note)
    fit = int(budget // batch_bytes)
    if may_reduce_workers:
        fit = min(workers, fit)
        note = (
            f"{workers} workers x 1 batch of {_mb(batch_bytes)} would not fit the {_mb(free_bytes)} "
            f"free in {SHM_PATH}: {fit or 'no'} worker{'s' if fit != 1 else ''}"
            + ("" if fit else ", files read in the main process")
        )
        return WorkerPlan(fit, 1 if fit else prefetch, fit * batch_bytes, free_bytes, note)
    raise UsageError(
        f"{option} {workers}: {workers} workers x 1 batch of {_mb(batch_bytes)} need "
        f"{_mb(workers * batch_bytes)} of shared memory, {SHM_PATH} has {_mb(free_bytes)} free "
        f"({'over ' + str(ranks) + ' ranks, ' if ranks > 1 else ''}{SHM_SHARE:.0%} of it usable); give "
        f"at most {fit} {option}, a smaller --batch-size, or a larger {SHM_PATH} (docker run --shm-size)"
    )


def mean_file_bytes(paths: Sequence[str], samples: int | None = None, sample_files: int = 64) -> float:
    """Bytes per sample of ``paths``: their total over ``samples`` (default: one per file).

    With ``samples`` None only the first ``sample_files`` files are measured (a folder of a hundred
    thousand images is not walked just to size a queue).
    """
    if samples is None:
        paths = list(paths[:sample_files])
        samples = len(paths)
    total = 0
    for p in paths:
        try:
            total += os.path.getsize(p)
        except OSError:
            continue
    return total / max(1, samples)
