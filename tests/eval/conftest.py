"""Fixtures for the eval tests: image files and dataset trees generated with Pillow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

ImageWriter = Callable[..., Path]


def write_image(path: Path, colour=(200, 30, 30), size=(50, 40), fmt: str | None = None, border=None) -> Path:
    """A solid-colour image (optionally with a 2-px border of another colour) at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", size, colour)
    if border is not None:
        w, h = size
        for x in range(w):
            for y in range(h):
                if x < 2 or y < 2 or x >= w - 2 or y >= h - 2:
                    im.putpixel((x, y), border)
    fmt = fmt or ("PNG" if path.suffix.lower() == ".png" else "JPEG")
    im.save(path, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return path


@pytest.fixture
def image_writer() -> ImageWriter:
    return write_image
