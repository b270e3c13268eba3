"""Where the official 2022 release lives, and how its bytes are proven to be that release.

The authors published ``imagenet_captions.zip`` in the mlfoundations/imagenet-captions GitHub
repository, with no checksum beside it. The one identity it has is its git blob id in the commit
that holds it: ``sha1(b"blob <size>\\0" + bytes)``, which any mirror can be checked against, and
which pins the size too. The download is pinned to that commit, never to a branch, so a later
push cannot change what users get. This module must not fetch anything itself.
"""

from __future__ import annotations

import hashlib

#: the commit whose tree holds the release (the repository's ``main`` at the time of writing)
COMMIT = "5cf98361f5e67661fd5b2c6ee219567484440da9"
REPOSITORY = "mlfoundations/imagenet-captions"
FILENAME = "imagenet_captions.zip"
#: the zip's blob id in that commit's tree (``git ls-tree 5cf98361``)
BLOB_ID = "7547cb08969e36fbc54232bb9100a7bb8f5743cf"
URL = f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}/{FILENAME}"


def blob_hasher(size: int) -> hashlib._Hash:
    """A sha1 primed with git's blob header: the size must be known before the first byte."""
    h = hashlib.sha1(usedforsecurity=False)
    h.update(b"blob %d\0" % size)
    return h


def blob_id(data: bytes) -> str:
    """The git blob id of ``data`` (what ``git hash-object`` prints)."""
    h = blob_hasher(len(data))
    h.update(data)
    return h.hexdigest()
