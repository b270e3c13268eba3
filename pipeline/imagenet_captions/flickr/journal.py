"""The response store's writing side: the write-ahead journal, its compaction, crash recovery, the lock.

Why a journal first: an answer costs a call out of a small hourly quota, so it must survive a
``kill -9``. Each answer is appended to the journal and the file is fsync'd in small batches
(every ``fsync_every`` answers or ``fsync_interval`` seconds, whichever comes first); an answer
counts as done only once its batch is on disk, so a crash loses at most the calls in flight and
the last unsynced batch, which a rerun asks again. A closed segment is compacted into one Parquet
part (written whole, never appended to); :func:`recover` compacts what a crashed run left. One
harvest at a time writes a store (:func:`store_lock`). Nothing here reads answers for a build.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict

from imagenet_captions import fsio
from imagenet_captions.flickr.segments import SEGMENT, StoredAnswer, dedup, read_journal, to_table
from imagenet_captions.locks import folder_lock


class JournalWriter:
    """Appends answers to the journal from any thread; :meth:`append` returns a future that is
    done once the answer is fsync'd. A background thread writes in batches: ``fsync_every``
    answers or ``fsync_interval`` seconds, whichever first. Every ``rotate_every`` answers the
    segment is closed and compacted to Parquet, so a days-long harvest keeps a short journal."""

    def __init__(
        self,
        directory: str,
        run_id: str,
        fsync_every: int = 64,
        fsync_interval: float = 0.25,
        rotate_every: int = 20_000,
    ):
        self.directory = directory
        self.run_id = run_id
        self.fsync_every = fsync_every
        self.fsync_interval = fsync_interval
        self.rotate_every = rotate_every
        os.makedirs(directory, exist_ok=True)
        self._seq = _next_seq(directory, run_id)
        self._file = self._open_segment()
        self._lines = 0
        self._pending: list[tuple[str, concurrent.futures.Future]] = []
        self._cond = threading.Condition()
        self._closing = False
        self._error: BaseException | None = None
        self.synced = 0
        self._thread = threading.Thread(target=self._run, name="journal", daemon=True)
        self._thread.start()

    def _segment_path(self) -> str:
        return os.path.join(self.directory, f"journal-{self.run_id}-{self._seq:05d}.jsonl")

    def _open_segment(self):  # noqa: ANN202 - a binary file object
        f = open(self._segment_path(), "ab")  # noqa: SIM115 - open for the segment's lifetime
        fsio.fsync_dir(self.directory)
        return f

    def append(self, answer: StoredAnswer) -> concurrent.futures.Future:
        line = json.dumps(asdict(answer), ensure_ascii=False, separators=(",", ":")) + "\n"
        fut: concurrent.futures.Future = concurrent.futures.Future()
        with self._cond:
            if self._error is not None:
                raise RuntimeError(f"the journal failed: {self._error}")
            if self._closing:
                raise RuntimeError("the journal is closed")
            self._pending.append((line, fut))
            if len(self._pending) >= self.fsync_every:
                self._cond.notify()
        return fut

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending and not self._closing:
                    self._cond.wait(self.fsync_interval)
                if not self._pending and self._closing:
                    break
                batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                self._file.write("".join(line for line, _ in batch).encode("utf-8"))
                self._file.flush()
                os.fsync(self._file.fileno())
            except BaseException as e:  # disk full, ...: every waiter learns it
                with self._cond:
                    self._error = e
                for _, fut in batch:
                    _resolve(fut, e)
                continue
            self.synced += len(batch)
            self._lines += len(batch)
            for _, fut in batch:
                _resolve(fut)
            if self._lines >= self.rotate_every:
                self._rotate()
        self._file.close()
        compact_journal(self._segment_path())

    def _rotate(self) -> None:
        self._file.close()
        compact_journal(self._segment_path())
        self._seq += 1
        self._lines = 0
        self._file = self._open_segment()

    def close(self) -> None:
        """Write what is pending, close and compact the open segment."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()


def _resolve(fut: concurrent.futures.Future, error: BaseException | None = None) -> None:
    """Complete a waiter's future; a waiter that was cancelled meanwhile (its task stopped) is
    fine: its line is written all the same, and the journal thread must not die of it."""
    try:
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)
    except concurrent.futures.InvalidStateError:
        pass


def _next_seq(directory: str, run_id: str) -> int:
    seqs = [
        int(m.group("seq"))
        for name in os.listdir(directory)
        if (m := SEGMENT.match(name)) and m.group("run") == run_id
    ]
    return max(seqs, default=-1) + 1


def compact_journal(journal_path: str) -> str | None:
    """Compact one closed journal segment into its Parquet part, then delete the segment.

    Idempotent: if the part already exists (a crash came between the rename and the delete), the
    segment is just deleted. Returns the part's path (None for an empty segment)."""
    directory, name = os.path.split(journal_path)
    m = SEGMENT.match(name)
    if not m or not name.startswith("journal-"):
        raise ValueError(f"not a journal segment: {journal_path}")
    part = os.path.join(directory, f"part-{m.group('run')}-{m.group('seq')}.parquet")
    result: str | None = part
    if not os.path.exists(part):
        rows = dedup(read_journal(journal_path))
        if rows:
            fsio.write_parquet_atomic(to_table(rows), part, compression="zstd")
        else:
            result = None
    os.remove(journal_path)
    fsio.fsync_dir(directory)
    return result


def recover(directory: str) -> int:
    """Compact every journal segment left by a crashed run; returns how many there were."""
    if not os.path.isdir(directory):
        return 0
    n = 0
    for name in sorted(os.listdir(directory)):
        if name.startswith("journal-") and SEGMENT.match(name):
            compact_journal(os.path.join(directory, name))
            n += 1
        elif ".parquet.tmp-" in name or (".parquet." in name and fsio.is_temp(name)):
            # A part whose rename never happened (``.tmp-<pid>`` is the name older versions used).
            os.remove(os.path.join(directory, name))
    return n


@contextlib.contextmanager
def store_lock(directory: str) -> Iterator[None]:
    """One harvest at a time per store (two would both ask for the same photos); the one refused
    is told which process holds it."""
    with folder_lock(directory, "harvest"):
        yield
