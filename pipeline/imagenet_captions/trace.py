"""Units of work noted across processes, so tests can count them on any runner.

Beam runners differ in what they recompute and where they run a step (a Dask worker, a
multi-processing DirectRunner child), and runner metrics are not available on all of them. When
``IMAGENET_CAPTIONS_TRACE`` names a file, each stage appends one line per unit of work it did
(a metadata part read, a class folder listed, a shard written): ``stage<TAB>unit<TAB>host:pid``.
The tests read it to assert that every unit ran exactly once and which workers ran them. Unset,
:func:`note` does nothing; nothing here may ever change what a stage computes.
"""

from __future__ import annotations

import os
import socket

ENV = "IMAGENET_CAPTIONS_TRACE"


def note(stage: str, unit: object) -> None:
    """Record that ``stage`` did ``unit`` in this process (a no-op unless the variable is set)."""
    path = os.environ.get(ENV)
    if not path:
        return
    line = f"{stage}\t{unit}\t{socket.gethostname()}:{os.getpid()}\n".encode()
    # One write(2) on an O_APPEND descriptor: lines from many processes never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read(path: str) -> list[tuple[str, str, str]]:
    """The ``(stage, unit, worker)`` lines of a trace file (for tests)."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        rows: list[tuple[str, str, str]] = []
        for line in f:
            # A line without its newline is still being written by a worker: it is read next time.
            if line.endswith("\n") and line.strip():
                stage, unit, worker = line[:-1].split("\t", 2)
                rows.append((stage, unit, worker))
        return rows
