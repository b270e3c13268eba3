"""DoFns for the scale-out tests' tiny pipelines.

They live in a module of their own, not in a test file, because the Dask workers import them by
name: the cluster fixture puts this folder on the workers' PYTHONPATH.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import apache_beam as beam

from imagenet_captions import trace


class NotePart(beam.DoFn):
    """Notes each part it handles as a "part" unit and sends it to one of ``groups`` keys."""

    def __init__(self, groups: int):
        self._groups = groups

    def process(self, part: int) -> Iterator[tuple[int, int]]:
        trace.note("part", part)
        yield part % self._groups, part


class NoteGroup(beam.DoFn):
    """Notes each group it receives as a "group" unit ``key=size``, and passes the size on."""

    def process(self, kv: tuple[int, Iterable[int]]) -> Iterator[tuple[int, int]]:
        key, values = kv
        size = len(list(values))
        trace.note("group", f"{key}={size}")
        yield key, size
