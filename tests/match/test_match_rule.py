"""The matching rule's edge cases, one test each, on small hand-made vocabularies (docs/match.md)."""

from __future__ import annotations

import pickle

from imagenet_captions.match import matcher as matcher_module
from imagenet_captions.match.matcher import Matcher
from imagenet_captions.match.options import MatchRule
from imagenet_captions.match.vocabulary import Vocabulary
from imagenet_captions.outcomes import RECORDS, Drop

LION, SEA_LION, TIGER, CRANE_BIRD, CRANE_MACHINE, LANTERN, RV, SLOTH = (f"n0000000{i}" for i in range(1, 9))
TERMS = {
    LION: ("lion",),
    SEA_LION: ("sea lion",),
    TIGER: ("tiger", "Panthera tigris"),
    CRANE_BIRD: ("crane",),
    CRANE_MACHINE: ("crane",),
    LANTERN: ("jack-o'-lantern",),
    RV: ("recreational vehicle", "RV", "R.V."),
    SLOTH: ("three-toed sloth",),
}


def vocab(terms: dict[str, tuple[str, ...]] | None = None) -> Vocabulary:
    terms = TERMS if terms is None else terms
    return Vocabulary(tuple(sorted(terms)), dict(terms), "test")


def match(captions: list[str | None], terms: dict[str, tuple[str, ...]] | None = None, **rule) -> list:
    rule.setdefault("clean", False)
    return Matcher(vocab(terms), MatchRule(**rule)).match_many(captions)


def classes(outcome) -> list[str] | str:
    """The matched wnids, or the Drop's reason."""
    return outcome.reason if isinstance(outcome, Drop) else [w for w, _ in outcome]


def test_a_term_matches_at_the_start_and_end_of_the_text_and_nowhere_inside_a_word():
    got = match(["lion", "lion at dusk", "a lion", "lionfish", "sealion", "a lions den", "dandelion"])
    assert [classes(o) for o in got] == [
        [LION],
        [LION],
        [LION],
        "no_class",
        "no_class",
        "no_class",
        "no_class",
    ]


def test_punctuation_is_a_boundary_on_either_side():
    captions = [
        "(lion)",
        "lion,",
        "lion.",
        "«lion»",
        "lion's mane",
        "the-lion-",
        "lion—cub",
        '"lion"',
        "lion/tiger",
    ]
    got = match(captions, {LION: ("lion",)})
    assert [classes(o) for o in got] == [[LION]] * len(captions)


def test_a_digit_is_a_word_character_of_any_script():
    got = match(["2lion", "lion2", "lion 2", "٣lion", "lion²", "lion ٣"], {LION: ("lion",)})
    assert [classes(o) for o in got] == ["no_class", "no_class", [LION], "no_class", "no_class", [LION]]


def test_underscore_is_a_word_character():
    got = match(["lion_king", "_lion", "lion _"], {LION: ("lion",)})
    assert [classes(o) for o in got] == ["no_class", "no_class", [LION]]


def test_letters_of_other_scripts_are_word_characters():
    got = match(["élion", "lionñ", "львlion", "lion 猫"], {LION: ("lion",)})
    assert [classes(o) for o in got] == ["no_class", "no_class", "no_class", [LION]]


def test_terms_with_punctuation_inside_match_as_written():
    got = match(
        [
            "a jack-o'-lantern!",
            "jack o lantern",
            "R.V. park",
            "an R.V.s lot",
            "xR.V.",
            "a three-toed sloth",
            "three toed sloth",
        ],
        case="sensitive",
    )
    assert [classes(o) for o in got] == [
        [LANTERN],
        "no_class",
        [RV],
        "no_class",
        "no_class",
        [SLOTH],
        "no_class",
    ]
    assert got[2] == [(RV, ("R.V.",))]


def test_longest_discards_an_occurrence_inside_another_and_all_keeps_it():
    captions = ["a sea lion basks", "a sea lion and a lion"]
    assert match(captions) == [
        [(SEA_LION, ("sea lion",))],
        Drop(RECORDS, "several_classes", "", f"{LION} {SEA_LION}"),
    ]
    assert [classes(o) for o in match(captions, overlaps="all")] == ["several_classes", "several_classes"]
    assert match(captions, overlaps="all", multiple="all") == [
        [(LION, ("lion",)), (SEA_LION, ("sea lion",))],
        [(LION, ("lion",)), (SEA_LION, ("sea lion",))],
    ]


def test_longest_keeps_occurrences_that_only_partly_overlap():
    terms = {LION: ("lion king",), SEA_LION: ("sea lion",)}
    assert match(["sea lion king"], terms, multiple="all") == [
        [(LION, ("lion king",)), (SEA_LION, ("sea lion",))]
    ]


def test_longest_ignores_a_longer_term_that_fails_its_boundary():
    """ "sea lions" is no occurrence of "sea lion", so it hides nothing: "sea" still counts."""
    terms = {LION: ("sea",), SEA_LION: ("sea lion",)}
    assert match(["sea lions", "sea lion"], terms) == [[(LION, ("sea",))], [(SEA_LION, ("sea lion",))]]


def test_a_term_of_two_classes_names_both():
    assert match(["a crane at dusk"]) == [
        Drop(RECORDS, "several_classes", "", f"{CRANE_BIRD} {CRANE_MACHINE}")
    ]
    assert match(["a crane at dusk"], multiple="all") == [
        [(CRANE_BIRD, ("crane",)), (CRANE_MACHINE, ("crane",))]
    ]


def test_insensitive_compares_lowered_text_and_terms_and_reports_the_vocabulary_spelling():
    got = match(["LION", "Panthera Tigris", "rv park"])
    assert got == [[(LION, ("lion",))], [(TIGER, ("Panthera tigris",))], [(RV, ("RV",))]]


def test_sensitive_compares_as_written():
    got = match(
        ["LION", "lion", "Panthera tigris", "panthera tigris", "rv park", "RV park"], case="sensitive"
    )
    assert [classes(o) for o in got] == ["no_class", [LION], [TIGER], "no_class", "no_class", [RV]]


def test_spellings_that_lower_alike_are_one_occurrence_with_both_terms():
    terms = {RV: ("RV", "rv")}
    assert match(["an Rv"], terms) == [[(RV, ("RV", "rv"))]]
    assert match(["an Rv"], terms, case="sensitive") == [Drop(RECORDS, "no_class", "", "")]


def test_positions_are_in_the_lowered_text_when_lowering_lengthens_it():
    """ "İ" lowers to two characters: a caption after one full of them is still found as itself."""
    captions = ["İİİİİİ", "lion", "İstanbul lion İ", "x"]
    assert [classes(o) for o in match(captions)] == ["no_class", [LION], [LION], "no_class"]
    assert match(["İZMIR"], {LION: ("İzmir",)}) == [[(LION, ("İzmir",))]]
    # "İZMİR" lowers to "i̇zmi̇r", "İzmir" to "i̇zmir": no occurrence
    assert match(["İZMİR"], {LION: ("İzmir",)}) == [Drop(RECORDS, "no_class", "", "")]


def test_several_classes_are_a_drop_or_one_pair_each():
    assert match(["a lion and a tiger"]) == [Drop(RECORDS, "several_classes", "", f"{LION} {TIGER}")]
    assert match(["a lion and a tiger, a tiger"], multiple="all") == [
        [(LION, ("lion",)), (TIGER, ("tiger",))]
    ]


def test_every_term_that_occurred_is_reported_once_sorted():
    assert match(["RV, R.V. or recreational vehicle? RV."], case="sensitive") == [
        [(RV, ("R.V.", "RV", "recreational vehicle"))]
    ]


def test_a_missing_or_blank_caption_is_no_caption():
    got = match([None, "", "   ", "\t\n ", "\u200b"])
    assert got[:4] == [
        Drop(RECORDS, "no_caption", "", "missing"),
        Drop(RECORDS, "no_caption", "", "empty"),
        Drop(RECORDS, "no_caption", "", "empty"),
        Drop(RECORDS, "no_caption", "", "empty"),
    ]
    assert classes(got[4]) == "no_class"  # str.strip() keeps a zero-width space
    assert classes(match(["\u200b"], clean=True)[0]) == "no_caption"  # cleaning removes it


def test_cleaning_runs_before_matching_unless_turned_off():
    captions = ["<b>lion</b>", "li&shy;on", "li&#111;n", "sea\n\nlion"]
    assert [classes(o) for o in match(captions, clean=True)] == [[LION], [LION], [LION], [SEA_LION]]
    assert [classes(o) for o in match(captions, clean=False)] == [[LION], "no_class", "no_class", [LION]]


def test_line_breaks_inside_captions_do_not_shift_the_captions_after_them():
    assert [classes(o) for o in match(["a\nb\nc\n", "\n\nlion", "tiger\n"])] == [
        "no_class",
        [LION],
        [TIGER],
    ]


def test_a_lone_surrogate_is_a_non_word_character():
    assert [classes(o) for o in match(["\ud800lion", "li\udc00on", "x"])] == [[LION], "no_class", "no_class"]
    assert classes(match(["\ud800lion"], clean=True)[0]) == [LION]


def test_batches_agree_with_one_caption_at_a_time(monkeypatch):
    captions = [None, "a lion", "", "crane", "sea lion", "nothing here", "TIGER!"] * 5
    m = Matcher(vocab(), MatchRule(clean=False))
    one_by_one = [m.match_one(c) for c in captions]
    monkeypatch.setattr(matcher_module, "BATCH", 4)
    assert m.match_many(captions) == one_by_one


def test_drops_carry_the_keys_when_given():
    m = Matcher(vocab(), MatchRule(clean=False))
    got = m.match_many([None, "lion", "crane", "zebra"], keys=["k0", "k1", "k2", "k3"])
    assert got[0] == Drop(RECORDS, "no_caption", "k0", "missing")
    assert got[1] == [(LION, ("lion",))]
    assert got[2].key == "k2" and got[2].reason == "several_classes"
    assert got[3] == Drop(RECORDS, "no_class", "k3", "")


def test_a_matcher_pickles_without_its_automaton_and_rebuilds_it():
    m = Matcher(vocab(), MatchRule(case="sensitive", overlaps="all", multiple="all", clean=False))
    fresh = pickle.dumps(m)
    expected = m.match_many(["sea lion", "RV", "rv"])
    used = pickle.dumps(m)
    assert len(used) == len(fresh)  # the built automaton does not travel
    for blob in (fresh, used):
        again = pickle.loads(blob)
        assert again.rule == m.rule and again.vocabulary == m.vocabulary
        assert again.match_many(["sea lion", "RV", "rv"]) == expected


def test_a_vocabulary_with_no_terms_matches_nothing():
    assert match(["lion", None], {LION: ()}) == [
        Drop(RECORDS, "no_class", "", ""),
        Drop(RECORDS, "no_caption", "", "missing"),
    ]
