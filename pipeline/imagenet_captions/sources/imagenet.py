"""ImageNet's training images, as the ILSVRC-2012 folder or the official tar of per-class tars.

What leaves this module is a *reference* to an image (a path, or a path with the offset and size of
a member inside a tar), never its bytes: references are what cross Beam's shuffles, so memory stays
flat as the data grows, and the shard writer reads the bytes itself (:func:`read_image_bytes`).

``ILSVRC2012_img_train.tar`` (~140 GB) holds 1,000 tars, one per class; it is never unpacked. Its
headers are read once (seeking over the data), and each inner tar is listed through a window on the
outer file, so an image's offset is absolute in the outer file.

Every directory entry or tar member is accounted for: an image reference, or a
:class:`~imagenet_captions.outcomes.Drop` (``bad_image_name``, ``not_a_class_folder``,
``unknown_class``, ``unsafe_path``, ``link``, ``not_a_file``, ``corrupt_tar``).

A link is never followed, neither a symbolic link in the folder (an image file or a class folder)
nor a symbolic or hard link member of a tar: it can lead anywhere outside the tree (another
user's photo, ``/etc/passwd``), and what it points at would be read into a shard and published.
The folder a build is given, and its ``train/`` child, are the user's choice and are followed; what
stands inside them is not. The reader opens loose files with ``O_NOFOLLOW`` and reads only regular
files, so an entry swapped for a link or a pipe after the listing is unreadable, not followed. The listing is planned once
(:func:`plan_listing`: the class folders or class tars, plus what stands at the top) and each part
is listed by a worker (:func:`list_part`); which classes are known is the build's class list.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import threading
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from imagenet_captions import fsio
from imagenet_captions.classes import WNID_RE, parse_image_id, wnid_to_label
from imagenet_captions.errors import UsageError
from imagenet_captions.outcomes import IMAGES, Drop
from imagenet_captions.records import ImageRef

IMAGE_SUFFIXES = (".jpeg", ".jpg")

#: One entry of the listing: an image reference (see :func:`image_ref`) or why it is not one.
Listed = ImageRef | Drop


def image_ref(
    key: str,
    wnid: str,
    path: str,
    offset: int | None = None,
    size: int | None = None,
    mtime_ns: int | None = None,
) -> ImageRef:
    """Where an image's bytes are. Size and modification time make a changed file change its shard's
    input digest (incremental builds); a tar member's identity is its tar, offset and size."""
    ref: ImageRef = {"key": key, "wnid": wnid, "path": path, "offset": offset, "size": size}
    if mtime_ns is not None:
        ref["mtime_ns"] = mtime_ns
    return ref


def classify_name(
    name: str, folder_wnid: str | None, known: Container[str] | None = None, shown: str | None = None
) -> tuple[str, str] | Drop:
    """``(key, wnid)`` for an image file name like ``n01440764_10026.JPEG``, else the Drop that says why
    (its key is ``shown``, the entry as the report names it, or ``name``).

    ``folder_wnid`` is the class the file sits in (folder or inner tar); the file's own wnid must
    match. ``known`` are the build's classes (default: ILSVRC-2012's 1,000)."""
    shown = name if shown is None else shown
    if ".." in name.split("/") or name.startswith("/"):
        return Drop(IMAGES, "unsafe_path", shown)
    base = name.rsplit("/", 1)[-1]
    stem, dot, suffix = base.rpartition(".")
    if not dot or "." + suffix.lower() not in IMAGE_SUFFIXES:
        return Drop(IMAGES, "bad_image_name", shown)
    parsed = parse_image_id(stem)
    if parsed is None or (folder_wnid is not None and parsed[0] != folder_wnid):
        return Drop(IMAGES, "bad_image_name", shown)
    if parsed[0] not in (wnid_to_label() if known is None else known):
        return Drop(IMAGES, "unknown_class", shown)
    return stem, parsed[0]


# ---------------------------------------------------------------------------------------------------
# The ILSVRC folder: train/<wnid>/<wnid>_<n>.JPEG
# ---------------------------------------------------------------------------------------------------


def train_folder(root: str | Path) -> Path:
    """The folder holding the class folders: ``root`` itself or its ``train/`` child."""
    root = Path(root)
    if (root / "train").is_dir():
        return root / "train"
    if not root.is_dir():
        raise UsageError(f"ImageNet folder not found: {root}")
    return root


def list_top_level(root: str | Path) -> tuple[list[str], list[Listed]]:
    """The class folders to list (sorted paths), and what else stands at the top level (accounted for)."""
    if fsio.is_remote(str(root)):
        return _list_top_level_remote(str(root))
    top = train_folder(root)
    folders: list[str] = []
    others: list[Listed] = []
    for entry in sorted(os.scandir(top), key=lambda e: e.name):
        if entry.is_symlink():
            others.append(_link(entry.name, entry.path))
        elif entry.is_dir(follow_symlinks=False):
            if WNID_RE.match(entry.name):
                folders.append(entry.path)
            else:
                others.extend(
                    Drop(IMAGES, "not_a_class_folder", f"{entry.name}/{name}")
                    for name in sorted(os.listdir(entry.path))
                )
        else:
            others.append(Drop(IMAGES, "not_a_class_folder", entry.name))
    return folders, others


def list_class_folder(folder: str, known: Container[str] | None = None) -> Iterator[Listed]:
    """Every entry of one class folder, as a reference or a Drop."""
    if fsio.is_remote(folder):
        yield from _list_class_folder_remote(folder, known)
        return
    wnid = os.path.basename(folder.rstrip("/"))
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        shown = f"{wnid}/{entry.name}"
        if entry.is_symlink():
            yield _link(shown, entry.path)
            continue
        if not entry.is_file(follow_symlinks=False):
            yield Drop(IMAGES, "not_a_file", shown)
            continue
        named = classify_name(entry.name, wnid, known, shown)
        if isinstance(named, Drop):
            yield named
        else:
            st = entry.stat(follow_symlinks=False)
            yield image_ref(named[0], named[1], entry.path, None, st.st_size, st.st_mtime_ns)


def _link(shown: str, path: str) -> Drop:
    """A symbolic link, counted and never followed; the detail says where it points."""
    try:
        target = os.readlink(path)
    except OSError:  # gone or replaced since the listing: still not followed
        target = "?"
    return Drop(IMAGES, "link", shown, f"symbolic link to {target}")


# ---------------------------------------------------------------------------------------------------
# ILSVRC2012_img_train.tar: a tar of per-class tars (or a flat tar of images)
# ---------------------------------------------------------------------------------------------------


class _Window(io.RawIOBase):
    """A read-only, seekable view of ``size`` bytes at ``offset`` of a file: an inner tar, unextracted."""

    def __init__(self, f: IO[bytes], offset: int, size: int):
        self._f, self._offset, self._size, self._pos = f, offset, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, min(self._size, base + pos))
        return self._pos

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._size - self._pos)
        if n <= 0:
            return 0
        self._f.seek(self._offset + self._pos)
        data = self._f.read(n)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


@dataclass(frozen=True)
class InnerTar:
    """A per-class tar inside the outer tar: where its bytes are, and the class its name says."""

    path: str
    name: str
    offset: int
    size: int


def plan_tar(path: str | Path, known: Container[str] | None = None) -> tuple[list[InnerTar], list[Listed]]:
    """Read the outer tar's headers once: its inner tars, and the images or oddities stored directly in it."""
    path = str(path)
    if not fsio.isfile(path):
        raise UsageError(f"ImageNet tar not found: {path}")
    inner: list[InnerTar] = []
    direct: list[Listed] = []
    try:
        with fsio.open_read(path) as raw, tarfile.open(fileobj=raw, mode="r:") as tf:
            for m in tf:
                direct_or_inner = _classify_member(path, m, None, known)
                if isinstance(direct_or_inner, InnerTar):
                    inner.append(direct_or_inner)
                elif direct_or_inner is not None:
                    direct.append(direct_or_inner)
    except tarfile.ReadError as e:
        raise UsageError(f"{path}: not a readable tar file: {e}") from None
    return sorted(inner, key=lambda t: t.name), direct


def _classify_member(
    path: str, m: tarfile.TarInfo, folder_wnid: str | None, known: Container[str] | None = None
) -> InnerTar | Listed | None:
    name = m.name
    if m.isdir():
        return None  # directories carry no images; their files are members of their own
    if ".." in name.split("/") or name.startswith("/"):
        return Drop(IMAGES, "unsafe_path", name)
    if m.issym() or m.islnk():  # no data of its own: reading "its" bytes would read whatever follows
        kind = "symbolic" if m.issym() else "hard"
        return Drop(IMAGES, "link", name, f"{kind} link to {m.linkname}")
    if not m.isfile() or m.issparse():  # a sparse member's data is not its size in one piece
        return Drop(IMAGES, "not_a_file", name)
    base = name.rsplit("/", 1)[-1]
    if folder_wnid is None and base.endswith(".tar"):
        return InnerTar(path, name, m.offset_data, m.size)
    parent = name.rsplit("/", 2)[-2] if name.count("/") >= 1 else None
    wnid_hint = folder_wnid or (parent if parent and WNID_RE.match(parent) else None)
    named = classify_name(name, wnid_hint, known)
    if isinstance(named, Drop):
        return named
    return image_ref(named[0], named[1], path, m.offset_data, m.size)


def list_inner_tar(inner: InnerTar, known: Container[str] | None = None) -> Iterator[Listed]:
    """Every member of one per-class tar, with offsets absolute in the outer file."""
    stem = inner.name.rsplit("/", 1)[-1][: -len(".tar")]
    if not WNID_RE.match(stem):
        yield Drop(IMAGES, "not_a_class_folder", inner.name)
        return
    with fsio.open_read(inner.path) as f:
        window = io.BufferedReader(_Window(f, inner.offset, inner.size), 1 << 16)
        try:
            with tarfile.open(fileobj=window, mode="r:") as tf:
                for m in tf:
                    listed = _classify_member(inner.path, m, stem, known)
                    if isinstance(listed, dict):
                        listed["offset"] = (listed["offset"] or 0) + inner.offset
                        yield listed
                    elif isinstance(listed, Drop):
                        yield listed
        except tarfile.ReadError as e:
            yield Drop(IMAGES, "corrupt_tar", inner.name, str(e))


def is_tar_source(path: str | Path) -> bool:
    return str(path).endswith(".tar") and fsio.isfile(str(path))


#: A unit of listing: ``("folder", path)``, ``("tar", InnerTar)`` or ``("entries", [Listed, ...])``.
ListingPart = tuple[str, Any]


def plan_listing(source: str, known: Container[str] | None = None) -> list[ListingPart]:
    """The parts a build lists in parallel: one per class folder or class tar, and one of the entries
    found at the top (oddities, or images stored directly in the outer tar), listed while planning."""
    if is_tar_source(source):
        inner, direct = plan_tar(source, known)
        parts: list[ListingPart] = [("tar", t) for t in inner]
    else:
        folders, direct = list_top_level(source)
        parts = [("folder", f) for f in folders]
    return [*parts, ("entries", direct)]


def source_wnids(source: str) -> list[str]:
    """The classes an ImageNet source holds: its class folders' or class tars' wnids (``--classes all``)."""
    if is_tar_source(source):
        inner, _ = plan_tar(source, known=())
        stems = [t.name.rsplit("/", 1)[-1][: -len(".tar")] for t in inner]
    else:
        folders, _ = list_top_level(source)
        stems = [fsio.basename(f) for f in folders]
    return sorted(s for s in stems if WNID_RE.match(s))


def list_part(part: ListingPart, known: Container[str] | None = None) -> Iterable[Listed]:
    """Every entry of one listing part, as an image reference or a Drop."""
    kind, what = part
    if kind == "folder":
        return list_class_folder(what, known)
    if kind == "tar":
        return list_inner_tar(what, known)
    return what


# ---------------------------------------------------------------------------------------------------
# Reading the bytes back
# ---------------------------------------------------------------------------------------------------


class ImageReader:
    """Reads referenced image bytes, keeping one open descriptor per file (a shard reads many members of one tar).

    Plain ``os`` calls rather than file objects: a loose file is open + one read + close (its size is
    known from the listing, so one ``read`` of size + 1 bytes sees the end of the file), a tar member
    is one ``pread`` at its offset. At ImageNet's ~110 KB per image this is a few microseconds per
    image less than ``open().read()``, and no copy through a buffer.
    """

    def __init__(self) -> None:
        self._handles: dict[str, int] = {}
        self._lock = threading.Lock()  # the shard writer reads from several threads

    def read(self, ref: ImageRef) -> bytes:
        if fsio.is_remote(ref["path"]):
            return _read_remote(ref)
        if ref.get("offset") is None:
            return _read_whole(ref["path"], ref.get("size"))
        offset, size = _member(ref)
        fd = self._handles.get(ref["path"])
        if fd is None:
            with self._lock:
                fd = self._handles.get(ref["path"])
                if fd is None:
                    fd = self._handles[ref["path"]] = os.open(ref["path"], os.O_RDONLY)
        data = os.pread(fd, size, offset)
        if len(data) != size:
            raise OSError(f"short read: {len(data)} of {size} bytes at offset {offset}")
        return data

    def close(self) -> None:
        for fd in self._handles.values():
            os.close(fd)
        self._handles.clear()

    def __enter__(self) -> ImageReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _list_top_level_remote(root: str) -> tuple[list[str], list[Listed]]:
    """Object stores have no folders: the class "folders" are the wnid prefixes under root (or root/train)."""
    names = fsio.listdir(root)
    top = fsio.join(root, "train") if "train" in names else root
    names = fsio.listdir(top) if top != root else names
    folders = [fsio.join(top, n) for n in names if WNID_RE.match(n)]
    others: list[Listed] = [Drop(IMAGES, "not_a_class_folder", n) for n in names if not WNID_RE.match(n)]
    return folders, others


def _list_class_folder_remote(folder: str, known: Container[str] | None) -> Iterator[Listed]:
    """An object-store class prefix: each object's size and update time are its identity, so an
    incremental build notices a replaced object (a new upload has a new update time)."""
    from apache_beam.io.filesystems import FileSystems

    wnid = fsio.basename(folder)
    prefix = folder.rstrip("/") + "/"
    (result,) = FileSystems.match([prefix + "*"])
    for meta in sorted(result.metadata_list, key=lambda m: m.path):
        name = meta.path[len(prefix) :]
        named = classify_name(name, wnid, known, f"{wnid}/{name}")
        if isinstance(named, Drop):
            yield named
        else:
            updated = getattr(meta, "last_updated_in_seconds", None) or 0
            yield image_ref(named[0], named[1], meta.path, None, meta.size_in_bytes, int(updated * 1e9))


def _read_remote(ref: ImageRef) -> bytes:
    """An image in an object store (gs://, s3://): the whole object, or a range of a tar."""
    with fsio.open_read(ref["path"]) as f:
        if ref.get("offset") is None:
            return f.read()
        offset, size = _member(ref)
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise OSError(f"short read: {len(data)} of {size} bytes at offset {offset}")
    return data


def _member(ref: ImageRef) -> tuple[int, int]:
    """The offset and size of a tar member's bytes (the listing gives a member's reference both)."""
    offset, size = ref.get("offset"), ref.get("size")
    if offset is None or size is None:
        raise OSError(f"a member of {ref['path']} without its offset and size")
    return offset, size


_MAX_READ = 0x7FFFF000  # Linux returns at most this much from one read(2)

#: How a loose image is opened: never through a symbolic link, and without waiting on a pipe (a
#: FIFO's open would block until a writer came); both flags are absent on some platforms.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def _read_whole(path: str, size: int | None) -> bytes:
    """All of a file; a regular file's short read means its end, so the usual case is one ``read``.

    The listing saw a regular file, but the entry may have been replaced since: a link is refused by
    the open (``O_NOFOLLOW``), anything else that is not a regular file (a pipe, a device that never
    ends) by the check after it. Both raise OSError, which the writer counts as ``unreadable_image``.
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"not a regular file: {path}")
        want = min((size or 0) + 1, _MAX_READ)
        data = os.read(fd, want)
        if len(data) < want:
            return data
        chunks = [data]  # the file grew since it was listed (or the size was unknown): read on to the end
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
