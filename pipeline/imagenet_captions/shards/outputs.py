"""A build that cannot write its outputs (a full disk, a read-only file system, no permission) ends
with one line naming the file, not a traceback from inside the pipeline.

:func:`naming_output` turns an ``OSError`` raised while a build writes into :class:`OutputError`,
a :class:`~imagenet_captions.errors.UsageError`: the CLI prints it as one line and exits 2, as for
every other problem the user must fix before a rerun (docs/shards.md). Reading inputs never goes
through here: an image that cannot be read is a reason in the report, not an end.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

from imagenet_captions.errors import UsageError


class OutputError(UsageError):
    """The build could not write one of its outputs; shards already committed are kept.

    ``_tagged_with_step``: Beam's DoFn runner re-raises an exception so marked unchanged, where it
    would otherwise log its traceback and wrap it in a ``RuntimeError`` named after the step
    (``apache_beam.runners.common.DoFnRunner._reraise_augmented``). That is what lets the one line
    reach the command on the in-process runner; the tests run a build into a full disk to hold Beam
    to it."""

    _tagged_with_step = True


@contextmanager
def naming_output(path: str) -> Iterator[None]:
    """Raise :class:`OutputError` for an ``OSError`` in the block, naming the file the error names,
    else ``path`` (a write on a descriptor names no file)."""
    try:
        yield
    except OSError as e:
        raise OutputError(describe(e, path)) from None


def describe(e: OSError, path: str) -> str:
    where = e.filename if isinstance(e.filename, str) and e.filename else path
    code = errno.errorcode.get(e.errno or 0)
    why = f"{e.strerror} ({code})" if e.strerror and code else (e.strerror or str(e))
    return f"cannot write {where}: {why}; shards already written are kept: rerun once it can be written"
