"""An object store on the local disk, for tests: the ``testfs://`` scheme as a Beam FileSystem.

``testfs:///abs/path`` is ``/abs/path``; match results keep the scheme, as GCS's and S3's do, so the
code paths for object stores (no folders, atomic writes by rename, listings by prefix, ranged
reads) run for real without a cloud. Importing this module registers the scheme (Beam finds
FileSystem subclasses by scanning; it refuses two for one scheme, so there is exactly one, here).
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from apache_beam.io.filesystem import BeamIOError, FileMetadata
from apache_beam.io.localfilesystem import LocalFileSystem

PREFIX = "testfs://"


def local(path: str) -> str:
    """The local path behind a ``testfs://`` path (other paths unchanged)."""
    return path[len(PREFIX) :] if path.startswith(PREFIX) else path


class PrefixedLocalFileSystem(LocalFileSystem):
    """Beam's LocalFileSystem under the ``testfs`` scheme."""

    @classmethod
    def scheme(cls) -> str:
        return "testfs"

    def create(self, path: str, *args: Any, **kwargs: Any) -> Any:
        return super().create(local(path), *args, **kwargs)

    def open(self, path: str, *args: Any, **kwargs: Any) -> Any:
        return super().open(local(path), *args, **kwargs)

    def exists(self, path: str) -> bool:
        return super().exists(local(path))

    def rename(self, source_file_names: list[str], destination_file_names: list[str]) -> None:
        return super().rename([local(p) for p in source_file_names], [local(p) for p in destination_file_names])

    def delete(self, paths: list[str]) -> None:
        # LocalFileSystem.delete matches each path through self.match, which adds the scheme back.
        missing = {p: FileNotFoundError(p) for p in paths if not os.path.exists(local(p))}
        if missing:
            raise BeamIOError("Delete operation failed", missing)
        for p in paths:
            shutil.rmtree(local(p)) if os.path.isdir(local(p)) else os.remove(local(p))

    def match(self, patterns: list[str], limits: list[int] | None = None) -> Any:
        results = super().match([local(p) for p in patterns], limits)
        for r in results:
            r.metadata_list = [
                FileMetadata(PREFIX + m.path, m.size_in_bytes, m.last_updated_in_seconds) for m in r.metadata_list
            ]
        return results
