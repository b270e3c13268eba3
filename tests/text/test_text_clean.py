"""Cleaning steps one by one, and the bad inputs of issue 4: each comes out clean, none crashes."""

from __future__ import annotations

import time
import unicodedata

import pyarrow as pa
import pytest

from imagenet_captions.text.clean import (
    clean_field,
    collapse_whitespace,
    fix_mojibake,
    html_to_text,
    remove_controls,
    remove_surrogates,
    unescape_entities,
)

ENTITY_MARKS = ("&amp;", "&quot;", "&#039;", "&#39;", "&nbsp;", "&lt;", "&gt;")


def assert_clean(s: str, one_line: bool = True) -> None:
    """The lead's acceptance rules for a caption-like string."""
    head = s[:80]  # never print a 1 MB string in a failure
    assert "<" not in s or not any(f"<{c}" in s for c in "abcdefghijklmnopqrstuvwxyz/!"), head
    assert not any(e in s for e in ENTITY_MARKS), head
    assert "Ã" not in s and "â€" not in s, head
    assert unicodedata.is_normalized("NFC", s), head
    assert not any(unicodedata.category(c) == "Cc" and (one_line or c != "\n") for c in s), head
    assert "\u200b" not in s and "\ufeff" not in s
    if one_line:
        assert "  " not in s and s == s.strip()
    pa.array([s], pa.string())  # encodable as UTF-8 (no lone surrogates)


def test_html_keeps_link_text_and_line_breaks_drops_script_and_style() -> None:
    raw = (
        '<p>Taken at <a href="http://x.org" rel="nofollow">the zoo</a>.<br />Second line</p>'
        "<script>alert('x')</script><style>p { color: red }</style><p>Third</p>"
    )
    out = clean_field(raw, keep_newlines=True)
    assert out == "Taken at the zoo.\nSecond line\n\nThird"
    assert "alert" not in out and "color" not in out


def test_plain_text_with_less_than_is_not_html() -> None:
    assert html_to_text("a < b and <3 you") == "a < b and <3 you"
    assert clean_field("a < b and <3 you") == "a < b and <3 you"


def test_unclosed_tags() -> None:
    assert clean_field("<b>bold <i>italic and <a href='x'>more") == "bold italic and more"


def test_entities_nested_three_deep_decode_to_a_fixed_point() -> None:
    assert unescape_entities("&amp;amp;amp;quot;hi&amp;amp;amp;quot;") == '"hi"'
    assert clean_field("Tom &amp;amp; Jerry &amp;#039;s &nbsp;house") == "Tom & Jerry 's house"


def test_escaped_markup_is_removed_after_decoding() -> None:
    assert clean_field("&lt;a href=&quot;x&quot;&gt;link&lt;/a&gt; text") == "link text"


def test_entity_loop_is_bounded() -> None:
    s = "&" + "amp;" * 5000 + "x"
    out = unescape_entities(s)  # must return, not loop for ever
    assert out.endswith("x")


def test_mojibake_repaired_and_clean_text_untouched() -> None:
    assert fix_mojibake("CafÃ© crÃ¨me") == "Café crème"
    assert fix_mojibake("donâ€™t") == "don\u2019t"
    for good in ("Café au lait à Paris, été", "Москва зимой", "東京タワー", "naïve “quotes”"):
        assert fix_mojibake(good) == good


def test_nfc() -> None:
    assert clean_field("Cafe\u0301") == "Caf\u00e9"


def test_controls_zero_width_and_nul_removed() -> None:
    assert remove_controls("a\x00b\u200bc\ufeffd\x07e\u202ef") == "abcdef"
    assert clean_field("x\x00\x00 y\u200b") == "x y"


def test_zero_width_joiner_kept_in_emoji() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert clean_field(f"family {family}") == f"family {family}"


def test_lone_surrogates_removed() -> None:
    s = "bad\ud800 sur\udfffrogate"
    assert remove_surrogates(s) == "bad surrogate"
    out = clean_field(s)
    assert out == "bad surrogate"
    assert clean_field("&#xD800;x") == "\ufffdx"  # the entity of a surrogate decodes to U+FFFD


def test_lone_combining_marks_removed_attached_marks_kept() -> None:
    assert clean_field("\u0301\u0308start") == "start"
    assert clean_field("a \u0301b") == "a b"
    assert clean_field("e\u0301") == "\u00e9"


def test_right_to_left_text_and_emoji_survive() -> None:
    for s in ("שלום עולם", "مرحبا بالعالم", "🐟 fish 🎣", "Привет"):
        assert clean_field(s) == s
    assert clean_field("\u202bשלום\u202c") == "שלום"  # bidi embedding controls go


def test_whitespace() -> None:
    assert collapse_whitespace("  a \t b\n\nc  ") == "a b c"
    assert collapse_whitespace(" a  \n\n\n\n b \n", keep_newlines=True) == "a\n\nb"
    assert clean_field("a\u00a0\u00a0b\u3000c") == "a b c"
    assert clean_field("l1\r\nl2\rl3", keep_newlines=True) == "l1\nl2\nl3"


@pytest.mark.parametrize(
    "raw", ["", " ", "\n\t ", "\x00", "\u200b", "<p></p>", "<script>x</script>", "&nbsp;"]
)
def test_empty_and_whitespace_only_become_empty(raw: str) -> None:
    assert clean_field(raw) == ""


def test_changed_names_the_steps_that_changed_text() -> None:
    changed: set[str] = set()
    clean_field("<b>CafÃ©</b> &amp;amp;  x", changed=changed)  # the parser decodes one level
    assert changed == {"html", "entities", "mojibake", "whitespace"}
    unchanged: set[str] = set()
    clean_field("plain words", changed=unchanged)
    assert unchanged == set()


def test_one_megabyte_descriptions_are_fast() -> None:
    cases = [
        "<p>word &amp; <b>more</b> text</p>\n" * 30000,
        "Café ü a " * 120000,
        "CafÃ© " * 170000,
        "<" * 1_000_000,
        "&" * 1_000_000,
        "a" * 1_000_000,
        "\u0301" * 500_000,
    ]
    for s in cases:
        t = time.perf_counter()
        out = clean_field(s, keep_newlines=True)
        elapsed = time.perf_counter() - t
        assert elapsed < 10, (s[:20], elapsed)  # generous: linear work is well under a second
        assert_clean(out, one_line=False)


def test_all_bad_inputs_come_out_clean() -> None:
    bad = [
        "<script>evil()</script><style>x{}</style>ok",
        "&amp;amp;amp;lt;b&amp;amp;amp;gt;",
        "CafÃ©\x00\u200b \ud83d",
        "<div>unclosed <span>",
        "\u0301lone",
        "emoji 😀 and rtl עברית",
    ]
    for s in bad:
        assert_clean(clean_field(s))


# ---- a secret in every form the cleaning decodes (the harvest's API key, echoed by a server) ----

SECRET = "f00dCafe5ecret_0123456789abcdef4"
#: Spellings of SECRET that are not SECRET as written, and that the cleaning turns into SECRET.
SECRET_FORMS = {
    "decimal entities": "".join(f"&#{ord(c)};" for c in SECRET),
    "hex entities": "".join(f"&#x{ord(c):X};" for c in SECRET),
    "a named entity": SECRET.replace("_", "&lowbar;"),
    "doubly escaped entities": "".join(f"&amp;#{ord(c)};" for c in SECRET),
    "split by a tag": f"{SECRET[:10]}<b></b>{SECRET[10:]}",
    "split by a tag and an entity": f"{SECRET[:3]}<span>&#{ord(SECRET[3])};</span>{SECRET[4:]}",
    "split by a soft hyphen entity": f"{SECRET[:5]}&shy;{SECRET[5:]}",
    "split by a zero-width space": f"{SECRET[:5]}\u200b{SECRET[5:]}",
    "split by a mojibake'd zero-width space (ftfy, then controls)": f"{SECRET[:5]}\u00e2\u20ac\u2039{SECRET[5:]}",
    "as written, in a clean text": f"key {SECRET} echoed",
}


@pytest.mark.parametrize("form", list(SECRET_FORMS), ids=list(SECRET_FORMS))
@pytest.mark.parametrize("keep_newlines", [False, True])
def test_a_secret_is_redacted_after_every_decoding_step(form: str, keep_newlines: bool) -> None:
    from imagenet_captions.flickr.keys import Redactor

    text = f"Photo by me. {SECRET_FORMS[form]} (see)"
    assert SECRET in clean_field(text, keep_newlines)  # the cleaning does decode it to the secret
    changed: set[str] = set()
    out = clean_field(text, keep_newlines, changed, redact=Redactor([SECRET]))
    assert SECRET not in out and "[REDACTED]" in out and "redacted" in changed
    assert out.startswith("Photo by me.") and out.endswith("(see)")
