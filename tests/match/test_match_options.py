"""MatchRule validates its values once; presets name their source and yield to explicit options."""

from __future__ import annotations

import pytest

from imagenet_captions.errors import OptionError, UsageError
from imagenet_captions.match.options import PRESETS, MatchRule, apply_preset


def test_the_default_rule():
    assert MatchRule() == MatchRule("insensitive", "longest", "drop", True)
    assert apply_preset(None) == (MatchRule(), "wordnet")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("case", "upper", "--case must be one of insensitive, sensitive, not 'upper'"),
        ("overlaps", "shortest", "--overlaps must be one of longest, all"),
        ("multiple", "first", "--multiple must be one of drop, all"),
        ("clean", "false", "--clean must be true or false"),
    ],
)
def test_a_bad_value_is_an_option_error_naming_the_option(field, value, message):
    with pytest.raises(OptionError, match=message) as e:
        MatchRule(**{field: value})
    assert isinstance(e.value, UsageError) and isinstance(e.value, ValueError)


def test_presets_set_their_values_and_name_their_source():
    assert apply_preset("fang2022") == (MatchRule("sensitive", "all", "drop", True), "wordnet")
    assert apply_preset("wen2024") == (MatchRule("insensitive", "all", "all", True), "wordnet")
    for preset in PRESETS.values():
        assert "20" in preset.source and len(preset.source) > 40


def test_explicit_options_win_over_the_preset_and_none_means_not_given():
    rule, names = apply_preset("fang2022", case="insensitive", overlaps=None, names="clip", clean=False)
    assert rule == MatchRule("insensitive", "all", "drop", False) and names == "clip"
    assert apply_preset("wen2024", multiple="drop")[0].multiple == "drop"


def test_an_unknown_preset_or_option_is_one_line():
    with pytest.raises(OptionError, match="--preset must be one of fang2022, wen2024, not 'laionet'"):
        apply_preset("laionet")
    with pytest.raises(OptionError, match="--seed is not a match option"):
        apply_preset(None, seed=3)


def test_the_rule_goes_into_an_output_as_plain_values():
    assert MatchRule().to_manifest() == {
        "case": "insensitive",
        "overlaps": "longest",
        "multiple": "drop",
        "clean": True,
    }
