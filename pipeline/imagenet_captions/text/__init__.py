"""The text stage: HTML to text, entities, mojibake, NFC, language identification, filters, captions.

Plain Python (``TextStage``) for one record; ``imagenet_captions.text.beam.CleanText`` is the Beam
transform (imported lazily here, so ``import imagenet_captions.text`` does not pay for Beam).
"""

from __future__ import annotations

from typing import Any

from imagenet_captions.text.caption import make_caption
from imagenet_captions.text.options import TextOptions, add_text_arguments, text_options_from_args
from imagenet_captions.text.stage import TextOutcome, TextStage

__all__ = [
    "CleanText",
    "TextOptions",
    "TextOutcome",
    "TextStage",
    "add_text_arguments",
    "make_caption",
    "text_options_from_args",
]


def __getattr__(name: str) -> Any:
    if name == "CleanText":
        from imagenet_captions.text.beam import CleanText

        return CleanText
    raise AttributeError(name)
