"""The matching rule's options (``MatchRule``) and the presets that name the papers they follow.

A rule is validated once, in ``__post_init__``, so a bad value is an ``OptionError`` (one line,
exit 2) before any caption is read. A preset is a set of option values with the paper it comes
from; an option the user gives explicitly always wins over the preset's value.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from imagenet_captions.errors import OptionError
from imagenet_captions.options import as_bool, as_choice, flag

CASES: tuple[str, ...] = ("insensitive", "sensitive")
OVERLAPS: tuple[str, ...] = ("longest", "all")
MULTIPLE: tuple[str, ...] = ("drop", "all")
#: The vocabulary when neither the user nor a preset names one.
DEFAULT_NAMES = "wordnet"


@dataclass(frozen=True)
class MatchRule:
    """How a caption is matched against the vocabulary (docs/match.md states the rule exactly).

    ``case``: ``insensitive`` compares ``str.lower()`` of text and terms, ``sensitive`` as they are.
    ``overlaps``: ``longest`` discards an occurrence lying inside another one, ``all`` keeps every one.
    ``multiple``: ``drop`` makes a caption naming several classes a ``several_classes`` Drop,
    ``all`` keeps one row per class. ``clean``: run the project's text cleaning on the caption first.
    """

    case: str = "insensitive"
    overlaps: str = "longest"
    multiple: str = "drop"
    clean: bool = True

    def __post_init__(self) -> None:
        as_choice("--case", self.case, CASES)
        as_choice("--overlaps", self.overlaps, OVERLAPS)
        as_choice("--multiple", self.multiple, MULTIPLE)
        as_bool("--clean", self.clean)

    def to_manifest(self) -> dict[str, Any]:
        """The rule as an output records it (with the vocabulary's digest, it fixes every match)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Preset:
    """Option values taken from a paper: ``rule`` holds MatchRule fields, ``names`` a vocabulary or None."""

    source: str
    rule: dict[str, Any]
    names: str | None = None


PRESETS: dict[str, Preset] = {
    "fang2022": Preset(
        "Fang et al., Data Determines Distributional Robustness in Contrastive Language Image "
        "Pre-training (CLIP), ICML 2022 (arXiv:2205.01397): class names searched in the captions as "
        "written, a caption naming several classes left out",
        {"case": "sensitive", "overlaps": "all", "multiple": "drop"},
    ),
    "wen2024": Preset(
        "Wen et al., What Makes CLIP More Robust to Long-Tailed Pre-Training Data?, NeurIPS 2024 "
        "(github.com/CVMI-Lab/clip-beyond-tail): WordNet synonyms, case-insensitive, every class a "
        "caption names counted (their YFCC-15M-Cls)",
        {"case": "insensitive", "overlaps": "all", "multiple": "all"},
        names="wordnet",
    ),
}


def apply_preset(preset: str | None, **explicit: Any) -> tuple[MatchRule, str]:
    """The rule and the vocabulary's ``names`` for ``preset`` under the explicit options.

    ``explicit`` takes MatchRule's fields and ``names``; a value of None means "not given" (an
    argparse default), so the preset's value, else the default, applies. An explicit value always
    wins: ``--preset fang2022 --case insensitive`` is fang2022 without its case sensitivity.
    """
    known = {f.name for f in fields(MatchRule)} | {"names"}
    unknown = sorted(set(explicit) - known)
    if unknown:
        raise OptionError(
            f"{flag(unknown[0])} is not a match option (the options: {', '.join(sorted(known))})"
        )
    values: dict[str, Any] = {}
    names = DEFAULT_NAMES
    if preset is not None:
        chosen = PRESETS.get(preset)
        if chosen is None:
            raise OptionError(f"--preset must be one of {', '.join(PRESETS)}, not {preset!r}")
        values.update(chosen.rule)
        names = chosen.names or names
    given = {k: v for k, v in explicit.items() if v is not None}
    names = given.pop("names", names)
    values.update(given)
    return MatchRule(**values), names
