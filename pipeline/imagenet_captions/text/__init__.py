"""The text stage: HTML to text, entities, mojibake, NFC, language identification, filters, captions.

The contract: ``TextStage(options).process(raw)`` takes one raw record (fields already coerced by
its source) and returns a :class:`TextOutcome`: the clean record with its caption and language, or
the name of the filter that dropped it (a reason of ``imagenet_captions.outcomes.REASONS``), plus
the steps that changed it. It is split into ``prepare`` and ``finish`` so that one owner's
duplicate descriptions can be settled between the halves (:mod:`.dedupe`). Statistics are a
mergeable :class:`~imagenet_captions.text.stats.TextStats`. The build runs the stage on each
metadata part (``imagenet_captions.build.work``); ``imagenet_captions.text.beam.CleanText`` is the
stage as a Beam transform of its own, for pipelines that clean text alone (imported lazily here,
so ``import imagenet_captions.text`` does not pay for Beam). With no options it keeps the
release's behaviour: nothing is dropped.
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
