"""Release folders for the download tests: random files and a manifest with their true sizes and sha256s."""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

from imagenet_captions import cli


def manifest_for(files: dict[str, bytes], **extra: Any) -> dict[str, Any]:
    """A format-1 manifest listing ``files`` (what the publisher writes; built here, not imported)."""
    entries = [
        {"path": p, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()} for p, b in sorted(files.items())
    ]
    return {
        "format": "imagenet-captions-release",
        "format_version": 1,
        "name": "imagenet-captions",
        "version": "1.0.0",
        "tool_version": "0.1.0",
        "with_images": False,
        "files": entries,
        "build": {},
        "shards": {},
        **extra,
    }


def write_release(
    root: Path, files: dict[str, bytes], manifest: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write ``files`` under ``root`` and ``root/manifest.json`` (``manifest`` overrides the true one)."""
    for rel, data in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    manifest = manifest if manifest is not None else manifest_for(files)
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def random_files(seed: int, sizes: dict[str, int]) -> dict[str, bytes]:
    rng = random.Random(seed)
    return {p: rng.randbytes(n) for p, n in sizes.items()}


def run_download(capsys: Any, *args: str) -> tuple[int, str, str]:
    """``imagenet-captions download ARGS`` in this process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    rc = cli.main(["download", *args, "--no-progress"])
    out, err = capsys.readouterr()
    return rc, out, err


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative POSIX path (the downloader's state file left out)."""
    found = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            p = Path(dirpath, name)
            rel = p.relative_to(root).as_posix()
            if rel != ".download-state.json":
                found[rel] = p.read_bytes()
    return found
