"""Caption assembly from the cleaned fields, as a choice of style.

Records keep the clean title, tags and description, so a caption in another style is remade from
a built table with ``make_caption`` alone, without cleaning again.
"""

from __future__ import annotations

from collections.abc import Sequence


def _one_line(s: str) -> str:
    # Clean fields only need their line breaks joined; anything else gets a full whitespace fold.
    if "\n" in s or "  " in s or "\t" in s or "\r" in s:
        return " ".join(s.split())
    return s.strip() if s[:1] == " " or s[-1:] == " " else s


def make_caption(
    title: str,
    tags: Sequence[str],
    description: str,
    style: str = "release",
    max_words: int | None = None,
) -> str:
    """The caption of one record: always one line, single spaces, no leading/trailing space.

    Styles: ``release`` (the paper's: title, tags, description joined by spaces, empty parts
    skipped); ``semicolon`` (the same parts joined by ``"; "``, tags by ``", "``); ``title``;
    ``title_tags`` (title and tags by spaces). ``max_words`` cuts the caption after that many
    whitespace-separated words: a word-boundary cut, never inside a word.
    """
    tags = [t for t in tags if t]
    if style == "release":
        parts = [title, " ".join(tags), description]
        sep = " "
    elif style == "semicolon":
        parts = [title, ", ".join(tags), description]
        sep = "; "
    elif style == "title":
        parts, sep = [title], " "
    elif style == "title_tags":
        parts, sep = [title, " ".join(tags)], " "
    else:
        raise ValueError(f"unknown caption style {style!r}")
    caption = sep.join(p for p in (_one_line(p) for p in parts) if p)
    if max_words is not None:
        words = caption.split(" ")
        if len(words) > max_words:
            caption = " ".join(words[:max_words]).rstrip(";,")
    return caption
