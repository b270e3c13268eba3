"""The class vocabulary: the shipped tables, the user's files, exclusions, unique terms, the digest."""

from __future__ import annotations

import gzip
import hashlib
import json
from importlib import resources
from pathlib import Path

import pytest

from imagenet_captions.classes import wnids
from imagenet_captions.errors import UsageError
from imagenet_captions.match.matcher import Matcher
from imagenet_captions.match.options import MatchRule
from imagenet_captions.match.vocabulary import Vocabulary, load_vocabulary

CRANE_BIRD, CRANE_MACHINE = "n02012849", "n03126707"


def test_wordnet_is_timms_table_byte_for_byte():
    """data/SOURCES.md names the sha256 of timm 1.0.31's file: the shipped copy is that file."""
    raw = resources.files("imagenet_captions.data").joinpath("imagenet_synset_to_lemma.txt.gz").read_bytes()
    digest = hashlib.sha256(gzip.decompress(raw)).hexdigest()
    assert digest == "1b8babda187421a4bde0c9c5a197c36f6bdda962f7ca11ffb2813806cbb2178f"


def test_wordnet_over_ilsvrc_has_the_1000_classes_and_their_lemmas():
    v = load_vocabulary("wordnet", "ilsvrc2012")
    assert v.classes == tuple(wnids())
    assert v.terms_of["n04065272"] == ("recreational vehicle", "RV", "R.V.")
    assert v.terms_of[CRANE_BIRD] == ("crane",) and v.terms_of[CRANE_MACHINE] == ("crane",)
    assert v.label_of("n01440764") == 0 and v.label_of("n15075141") == 999
    assert v.name_of("n04065272") == "recreational vehicle"


def test_wordnet_all_is_every_synset_of_imagenet_21k():
    v = load_vocabulary("wordnet", "all")
    assert len(v.classes) == 21_844
    assert set(wnids()) <= set(v.classes)


def test_clip_names_are_the_eval_class_names():
    """data/imagenet_clip_classnames.txt is a copy of eval's names (match sits below eval): they agree."""
    eval_json = resources.files("imagenet_captions.eval").joinpath(
        "data", "imagenet_zeroshot_classnames_templates.json"
    )
    names = json.loads(eval_json.read_text(encoding="utf-8"))["classnames"]
    v = load_vocabulary("clip", "ilsvrc2012")
    assert [v.terms_of[w] for w in v.classes] == [(n,) for n in names]
    assert v.terms_of[CRANE_BIRD] == ("crane bird",)


def test_a_names_file_is_read_and_normalised(tmp_path: Path):
    f = tmp_path / "names.tsv"
    f.write_text(
        "# my classes\n\nn00000002\tzebra,  Equus  zebra ,zebra,\nn00000001\tcafe\u0301\r\n", encoding="utf-8"
    )
    v = load_vocabulary(str(f), "all")
    assert v.classes == ("n00000001", "n00000002")
    assert v.terms_of == {"n00000001": ("caf\u00e9",), "n00000002": ("zebra", "Equus  zebra")}
    assert v.names == str(f)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("n00000001 zebra\n", "line 1: expected wnid<TAB>term"),
        ("x0000001\tzebra\n", "line 1: 'x0000001' is not a wnid"),
        ("n00000001\tzebra\nn00000001\thorse\n", "line 2: n00000001 is listed twice"),
        ("n00000001\t , ,\n", "line 1: n00000001 has no term"),
        ("# nothing\n\n", "lists no class"),
    ],
)
def test_a_bad_names_file_is_one_line_naming_it(tmp_path: Path, content: str, message: str):
    f = tmp_path / "names.tsv"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError, match=message) as e:
        load_vocabulary(str(f), "all")
    assert str(f) in str(e.value) and "\n" not in str(e.value)


def test_an_unreadable_names_file_is_one_line(tmp_path: Path):
    with pytest.raises(UsageError, match="--names: cannot read .*missing.tsv"):
        load_vocabulary(str(tmp_path / "missing.tsv"), "all")
    latin = tmp_path / "latin.tsv"
    latin.write_bytes("n00000001\tcaf\u00e9\n".encode("latin-1"))
    with pytest.raises(UsageError, match="is not UTF-8 text"):
        load_vocabulary(str(latin), "all")


def test_classes_the_names_do_not_cover_are_one_line(tmp_path: Path):
    f = tmp_path / "names.tsv"
    f.write_text("n00000001\tzebra\n", encoding="utf-8")
    with pytest.raises(
        UsageError, match=r"--classes: 1000 class\(es\) have no terms in --names .*names.tsv: n01440764"
    ):
        load_vocabulary(str(f), "ilsvrc2012")


def test_a_class_list_file_chooses_the_classes(tmp_path: Path):
    f = tmp_path / "classes.txt"
    f.write_text(f"{CRANE_MACHINE} crane\n{CRANE_BIRD}\n", encoding="utf-8")
    v = load_vocabulary("wordnet", str(f))
    assert v.classes == (CRANE_BIRD, CRANE_MACHINE)


def test_excluded_terms_never_match_whatever_their_case(tmp_path: Path):
    ex = tmp_path / "exclude.txt"
    ex.write_text("# too common\nLIGHT\nR.V.\n", encoding="utf-8")
    v = load_vocabulary("wordnet", "ilsvrc2012", exclude_terms=str(ex))
    assert "light" not in {t for ts in v.terms_of.values() for t in ts}
    assert v.terms_of["n04065272"] == ("recreational vehicle", "RV")
    full = Matcher(load_vocabulary("wordnet", "ilsvrc2012"), MatchRule(clean=False))
    fewer = Matcher(v, MatchRule(clean=False))
    assert isinstance(full.match_one("a light"), list) and fewer.match_one("a light").reason == "no_class"


def test_an_unreadable_exclude_file_is_one_line(tmp_path: Path):
    with pytest.raises(UsageError, match="--exclude-terms: cannot read"):
        load_vocabulary("wordnet", "ilsvrc2012", exclude_terms=str(tmp_path / "nope.txt"))


def test_unique_terms_drops_every_term_of_several_classes():
    v = load_vocabulary("wordnet", "ilsvrc2012", unique_terms=True)
    assert v.terms_of[CRANE_BIRD] == () and v.terms_of[CRANE_MACHINE] == ()
    assert v.terms_of["n04065272"] == ("recreational vehicle", "RV", "R.V.")
    assert v.name_of(CRANE_BIRD) == CRANE_BIRD  # no term left: the class is still a class
    every = [t.lower() for ts in v.terms_of.values() for t in set(ts)]
    assert len(every) == len(set(every))
    m = Matcher(v, MatchRule(clean=False))
    assert m.match_one("a crane").reason == "no_class"


def test_the_digest_is_of_the_terms_not_of_their_order():
    a = Vocabulary(("n00000001", "n00000002"), {"n00000001": ("a", "b"), "n00000002": ("c",)})
    b = Vocabulary(("n00000001", "n00000002"), {"n00000001": ("b", "a"), "n00000002": ("c",)})
    c = Vocabulary(("n00000001", "n00000002"), {"n00000001": ("a",), "n00000002": ("b", "c")})
    assert a.digest() == b.digest() != c.digest()
    canon = json.dumps([["n00000001", ["a", "b"]], ["n00000002", ["c"]]], separators=(",", ":"))
    assert a.digest() == hashlib.sha256(canon.encode()).hexdigest()


def test_a_vocabulary_refuses_terms_the_matcher_cannot_hold():
    with pytest.raises(ValueError, match="multi-line"):
        Vocabulary(("n00000001",), {"n00000001": ("sea\nlion",)})
    with pytest.raises(ValueError, match="non-UTF-8"):
        Vocabulary(("n00000001",), {"n00000001": ("li\ud800on",)})
    with pytest.raises(ValueError, match="sorted and unique"):
        Vocabulary(("n00000002", "n00000001"), {"n00000001": ("a",), "n00000002": ("b",)})
