"""Reading Beam's pass-through options, shared by ``runners`` and ``dask_runner``.

The commands hand Beam a plain list of strings; both the module that chooses a runner and the one
that talks to Dask need a few of its values (the last ``--runner``, the scheduler's address, a
timeout) before Beam parses them. They live here, below both, so that neither imports the other's
private helpers. Nothing here imports Beam or Dask.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from imagenet_captions.errors import UsageError

#: Seconds to wait for a Dask scheduler unless ``--dask_connection_timeout`` says otherwise.
DASK_CONNECT_TIMEOUT_S = 10
#: Packages whose versions must agree across the Dask client, scheduler and workers: the task
#: graph is pickled by the client and unpickled by the scheduler and the workers.
DASK_SAME_PACKAGES = ("python", "apache_beam", "dask", "distributed", "cloudpickle", "msgpack", "toolz")


class ClusterError(UsageError):
    """The cluster, not the data, stopped the build; the command prints it as one line (exit 2)."""


def option_values(args: list[str], name: str) -> Iterator[tuple[int, int, str | None]]:
    """``(index, width, value)`` of each ``name VALUE`` / ``name=VALUE`` in ``args``.

    Width is how many list items the option took, so callers can drop it; a bare flag has value
    None and width 1."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == name:
            has_value = i + 1 < len(args) and not args[i + 1].startswith("--")
            yield i, 2 if has_value else 1, args[i + 1] if has_value else None
            i += 2 if has_value else 1
            continue
        if arg.startswith(name + "="):
            yield i, 1, arg[len(name) + 1 :]
        i += 1


def last_value(args: list[str], name: str) -> str | None:
    """The value of the last ``name`` in ``args`` (argparse's rule: the last one wins)."""
    found = [value for _, _, value in option_values(args, name)]
    return found[-1] if found else None


def given(args: list[str], name: str) -> bool:
    return any(True for _ in option_values(args, name))


def without(args: list[str], name: str) -> list[str]:
    drop = {i + k for i, width, _ in option_values(args, name) for k in range(width)}
    return [a for i, a in enumerate(args) if i not in drop]


def whole_number(beam_args: list[str], name: str) -> int | None:
    value = last_value(beam_args, name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise UsageError(f"{name} must be a whole number, not {value!r}") from None
    return number


def local_cores() -> int:
    """The cores this process may use (a SLURM or container limit, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
