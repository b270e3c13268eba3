"""Helpers for the harvest tests (a uniquely named module: every test folder has a conftest)."""

from __future__ import annotations

import copy
from pathlib import Path

DATA = Path(__file__).parent / "data"
SAMPLE_URLS = DATA / "fall11_urls_sample_50synsets.txt"


def answer_for(template: dict, photo_id: int, title: str | None = None) -> dict:
    """A copy of a real answer, for another photo id (the id as a string, as Flickr sends it)."""
    a = copy.deepcopy(template)
    a["photo"]["id"] = str(photo_id)
    if title is not None:
        a["photo"]["title"] = {"_content": title}
    return a
