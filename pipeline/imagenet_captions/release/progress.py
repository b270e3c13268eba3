"""The download's progress bar: rich's, on stderr (bytes, rate, time left, files done), or nothing.

It is told bytes a block at a time, never per network chunk, so that drawing it costs nothing a
fast transfer would notice. It must never write to stdout, which carries the command's summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Progress:
    """Totals shrink as files turn out to be on disk already, and grow when a size is learnt."""

    enabled: bool
    total_files: int
    total_bytes: int
    done_files: int = 0
    _bar: Any = None
    _task: Any = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[files]}"),
                console=Console(stderr=True),
                transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("download", total=self.total_bytes, files=self._files())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def _files(self) -> str:
        return f"{self.done_files}/{self.total_files} files"

    def advance(self, n: int) -> None:
        if self._bar is not None and n:
            self._bar.update(self._task, advance=n)

    def adjust_total(self, delta: int) -> None:
        self.total_bytes += delta
        if self._bar is not None and delta:
            self._bar.update(self._task, total=self.total_bytes)

    def file_done(self) -> None:
        self.done_files += 1
        if self._bar is not None:
            self._bar.update(self._task, files=self._files())
