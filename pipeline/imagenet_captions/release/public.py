"""What a release may say of the publisher's files and options: names, never paths.

A path says nothing to a user (their files are elsewhere) and tells the world how the publisher's
disk is laid out (a home folder is a user name), so every option, input and corpus file a release
records (a build's or a match's) passes through here first.
"""

from __future__ import annotations

import re
from typing import Any

#: Build options that hold a local path the publisher gave (a file's name is all a user can use).
_PATH_OPTIONS = (("text", "blocklist_source"), ("classes", "source"))
_DRIVE_RE = re.compile(r"^[A-Za-z]:[\\/]")


def public_name(path: str) -> str:
    """The last component of a path or URL: what a release may say of a file on the publisher's disk."""
    return path.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or path


def _looks_like_a_path(value: str) -> bool:
    return value.startswith(("/", "~/", "./", "../")) or "://" in value or _DRIVE_RE.match(value) is not None


def _public(value: Any) -> Any:
    """``value`` with every string that is a local path or URL cut to its name (a safety net for
    options this module does not know of; the known ones are named in ``_PATH_OPTIONS``)."""
    if isinstance(value, dict):
        return {k: _public(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_public(v) for v in value]
    if isinstance(value, str) and _looks_like_a_path(value):
        return public_name(value)
    return value


def public_options(options: dict[str, Any]) -> dict[str, Any]:
    """The build's options as a release records them: names, not the publisher's paths.

    A path says nothing to a user (their files are elsewhere) and tells the world how the
    publisher's disk is laid out (a home folder is a user name). A text-release rebuild takes the
    class list and image options from here; neither needs a path."""
    out = _public(options)
    text = options.get("text")
    if isinstance(text, dict) and "blocklist" in text:  # words a caption may not hold, never paths
        out["text"]["blocklist"] = text["blocklist"]
    for section, key in _PATH_OPTIONS:
        part = out.get(section)
        if isinstance(part, dict) and isinstance(part.get(key), str):
            part[key] = public_name(part[key])
    return out


def public_metadata(spec: str | None) -> str | None:
    """``release:/home/me/imagenet_captions.zip`` as ``release:imagenet_captions.zip``: the kind and the name."""
    if not spec:
        return spec
    kind, sep, path = spec.partition(":")
    return f"{kind}:{public_name(path)}" if sep and path else public_name(spec)
