"""Fixtures for the harvest tests: Flickr getInfo answers built from real ones, URL lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flickr_helpers import DATA, answer_for


@pytest.fixture(scope="session")
def real_answers() -> dict[int, dict]:
    """The bundled real getInfo answers, keyed by photo id (the photo-member-only one wrapped)."""
    out = {}
    for path in sorted(DATA.glob("*.json")):
        obj = json.loads(path.read_text(encoding="utf-8"))
        if "photo" not in obj:
            obj = {"photo": obj, "stat": "ok"}
        out[int(obj["photo"]["id"])] = obj
    return out


@pytest.fixture()
def make_world(real_answers: dict[int, dict], tmp_path: Path):
    """``make_world(n, gone=every)`` -> (urls file, responses): n photos, every ``gone``-th missing."""
    templates = list(real_answers.values())

    def make(n: int, gone: int = 10, start: int = 5_000_000_000) -> tuple[Path, dict[int, dict]]:
        lines, responses = [], {}
        for i in range(n):
            pid = start + i
            lines.append(f"n01440764_{i}\thttp://farm3.static.flickr.com/2531/{pid}_e8462a8338.jpg")
            if gone and i % gone == gone - 1:
                continue
            responses[pid] = answer_for(templates[i % len(templates)], pid, title=f"photo {i}")
        # Two image ids pointing at one photo, a non-Flickr line, a broken one.
        lines.append(f"n01443537_1\thttps://www.flickr.com/photos/someone/{start}/")
        lines.append("n01443537_2\thttp://www.example.com/fish.jpg")
        lines.append("no tab on this line")
        urls = tmp_path / "urls.txt"
        urls.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return urls, responses

    return make
