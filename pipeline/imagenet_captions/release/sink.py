"""A response body on its way into a ``.part`` file: written in order and hashed in order, off the event loop.

The event loop only collects the chunks aiohttp hands over into blocks (``--block-size``); each
block is then written (``os.pwritev``, at its offset) and hashed (``hasher.update``) as two jobs on
worker threads, which run beside each other and beside the receipt of the next block, since both
release the GIL for large buffers. So receiving, writing and hashing are three stages that use three
cores where a machine has them; on fewer, they cost what they cost and nothing more: no chunk is
copied (blocks are lists of the chunks, never joined), and the loop does a few operations per chunk.

At most one block is being written and one hashed while the next fills, which bounds the memory of
a file (about three blocks) and what a ``kill -9`` can lose (the block being written and the one
filling). Blocks are written strictly in order, so the file on disk is always a prefix of the body:
never a hole a resume would trust.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

#: iovecs one pwritev may take (Linux's IOV_MAX)
_IOV_MAX = 1024


def _pwrite_all(fd: int, chunks: list[bytes], pos: int) -> None:
    """All of ``chunks`` at ``pos``: a regular file may still take fewer bytes than asked."""
    views = [memoryview(c) for c in chunks]
    while views:
        n = os.pwritev(fd, views[:_IOV_MAX], pos)
        pos += n
        while n and views:
            if n >= len(views[0]):
                n -= len(views.pop(0))
            else:
                views[0] = views[0][n:]
                n = 0


def _update(hasher: Any, chunks: list[bytes]) -> None:
    for c in chunks:
        hasher.update(c)


class BlockSink:
    """One response's body into an open file from ``pos``; ``add`` each chunk, then ``close``.

    ``hasher`` (None when the length, and so a git blob's header, is not known yet) sees the bytes
    in the order they are written; ``on_block`` is told each block's size once it is handed over.
    """

    def __init__(
        self,
        pool: Executor,
        fd: int,
        pos: int,
        hasher: Any,
        block_size: int,
        on_block: Callable[[int], None],
    ) -> None:
        self._pool = pool
        self._fd = fd
        self._hasher = hasher
        self._block = block_size
        self._on_block = on_block
        self._buf: list[bytes] = []
        self._buffered = 0
        self._jobs: list[Future[None]] = []
        #: where the next block goes
        self.pos = pos
        #: body bytes taken from the response so far (buffered ones included)
        self.received = 0

    async def add(self, chunk: bytes) -> None:
        self._buf.append(chunk)
        self._buffered += len(chunk)
        self.received += len(chunk)
        if self._buffered >= self._block:
            await self._hand_over()

    async def _hand_over(self) -> None:
        chunks, n = self._buf, self._buffered
        self._buf, self._buffered = [], 0
        # The previous block's jobs must be done: writes stay in order (the file stays a prefix),
        # hash updates stay in order, and no more than one block waits in each.
        await self._settle()
        self._jobs.append(self._pool.submit(_pwrite_all, self._fd, chunks, self.pos))
        if self._hasher is not None:
            self._jobs.append(self._pool.submit(_update, self._hasher, chunks))
        self.pos += n
        self._on_block(n)

    async def close(self) -> None:
        """Hand over what is buffered and wait until every byte is written and hashed."""
        if self._buf:
            await self._hand_over()
        await self._settle()

    async def _settle(self) -> None:
        """Wait for both jobs of the last block; a failure (a full disk) is raised once both ended.

        The jobs stay listed until they have ended, so that ``abandon`` (after a cancellation here)
        still waits for them before the file is closed under them."""
        if not self._jobs:
            return
        waited = [asyncio.wrap_future(j) for j in self._jobs]
        await asyncio.wait(waited)
        self._jobs = []
        errors = [w.exception() for w in waited]  # each one retrieved: none is logged as forgotten
        for e in errors:
            if e is not None:
                raise e

    def abandon(self) -> None:
        """Wait, blocking, for the jobs in flight and drop what is buffered: the caller is failing
        (or cancelled) and is about to close the file, which no job may still be writing to."""
        concurrent.futures.wait(self._jobs)
        self._jobs = []
        self._buf, self._buffered = [], 0
