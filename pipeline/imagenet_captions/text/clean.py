"""Cleaning of one Flickr text field: HTML to text, entities, mojibake, NFC, control characters, spaces.

Every step is a plain function ``str -> str`` so a test can pin it down alone, and ``clean_field``
runs them in a fixed order and reports which steps changed the text (the report counts them).

Speed matters: the whole release is ~450k records and most fields are short ASCII strings, so each
step first asks a cheap question (``'<' in s``, ``s.isascii()``) and returns the input untouched
when it cannot apply. Every regular expression here is linear in the input (no nested
quantifiers), so a 1 MB description costs milliseconds, not minutes.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable

import ftfy
import regex
from ftfy.badness import is_bad
from selectolax.lexbor import LexborHTMLParser

#: The names of the cleaning steps, in the order they run; ``changed`` tuples use these names.
STEPS: tuple[str, ...] = ("surrogates", "html", "entities", "mojibake", "nfc", "control", "whitespace")
#: The name ``changed`` gets when a secret (the harvest's API key) was removed from the text.
REDACTED = "redacted"

_SURROGATES_RE = re.compile("[\ud800-\udfff]")
# A tag-like thing: '<' then a letter, '/', '!' or '?'. "a < b" and "<3" are text, not tags.
_TAG_RE = re.compile(r"<[A-Za-z/!?]")
# An entity: named (&amp;), decimal (&#39;) or hex (&#x27;). html.unescape also accepts some
# names without ';' (&amp), which is why the test below checks '&' only, then lets unescape decide.
_ENTITY_HINT = "&"
#: Elements whose boundaries are line breaks in the text (so paragraphs stay paragraphs).
_BLOCK_SELECTOR = (
    "p,div,li,tr,h1,h2,h3,h4,h5,h6,blockquote,pre,ul,ol,table,dd,dt,section,article,header,footer"
)
_BLOCK_TAG_RE = re.compile(
    r"<(?:p|div|li|tr|h[1-6]|blockquote|pre|ul|ol|table|dd|dt|section|article|header|footer)[\s/>]"
)
#: Elements whose content is never text for a reader.
_DROP_TAGS = ["script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "math"]

# Characters removed outright: C0/C1 controls except tab and newline (those become whitespace),
# zero-width space, word joiner, BOM/zero-width no-break space, soft hyphen, bidi embedding and
# isolate controls (they reorder the display of whatever follows them, often invisibly), and the
# Unicode "noncharacters" and private-use-looking specials U+FFF9..U+FFFB. Zero-width joiner and
# non-joiner (U+200D, U+200C) are KEPT: they carry meaning in emoji sequences and in Persian and
# Indic scripts; likewise the left-to-right/right-to-left marks U+200E/U+200F are removed (they only
# affect display and are invisible noise in a caption).
_CONTROL_RE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064"
    "\u2066-\u2069\ufeff\ufff9-\ufffb\ufffe\uffff]"
)
# Combining marks with nothing to combine with: at the start of the text or of a line, or after a
# space. NFC cannot attach them, and they render as dotted circles or stack onto the previous word.
_LONE_MARKS_RE = regex.compile(r"(?<!\S)\p{M}+")

# A necessary sign of mojibake, cheap to look for. UTF-8 read as Latin-1/Windows-1252 turns every
# multi-byte character into a lead-byte character (U+00C2..U+00F4: Â Ã Ä ... ô) followed by a
# continuation-byte character (U+0080..U+00BF, or what cp1252 maps 0x80..0x9F to: € ‚ ƒ „ … † ‡ ˆ
# ‰ Š ‹ Œ Ž ‘ ’ “ ” • – — ˜ ™ š › œ ž Ÿ, or U+FFFD where a byte was lost, or a space where a
# non-breaking space was, after Â or Ã). UTF-8 read as Windows-1251 turns into Cyrillic, so Cyrillic text always
# goes to ftfy's own test. Text with neither cannot be what ftfy fixes, and skips its badness
# regex, the costly part of ftfy on clean text.
_MOJIBAKE_PAIR_RE = re.compile(
    "[\\u00c2-\\u00f4][\\u0080-\\u00bf\\u0152\\u0153\\u0160\\u0161\\u0178\\u017d\\u017e\\u0192\\u02c6"
    "\\u02dc\\u2013\\u2014\\u2018-\\u201a\\u201c-\\u201e\\u2020-\\u2022\\u2026\\u2030\\u2039\\u203a\\u20ac"
    "\\u2122\\ufffd]"
)
_MOJIBAKE_NBSP_RE = re.compile("[\\u00c2\\u00c3] ")
_CYRILLIC_RE = re.compile("[\\u0400-\\u04ff]")


def _mojibake_hint(s: str) -> bool:
    """Each test is a single character-class scan (fast); an alternation of them would not be."""
    return (
        _MOJIBAKE_PAIR_RE.search(s) is not None
        or _MOJIBAKE_NBSP_RE.search(s) is not None
        or _CYRILLIC_RE.search(s) is not None
    )


# The fast path. A text needs no step at all when it has none of the characters any step acts on
# (one character-class scan: these run at C speed, unlike alternations), no doubled or edge space,
# and, if not ASCII, is NFC, has no mojibake sign and no combining mark starting a word. Most tags
# and titles, and most descriptions in most languages, take this path.
_SUSPECT = (
    "\\x00-\\x08\\x0b-\\x1f\\x7f-\\xa0<&\\u00ad\\u1680\\u180e\\u2000-\\u200f\\u2028-\\u202f"
    "\\u205f-\\u2064\\u2066-\\u2069\\u3000\\ufeff\\ufff9-\\uffff\\ud800-\\udfff"
)
_SUSPECT_RE = re.compile(f"[{_SUSPECT}\\t\\n]")
_SUSPECT_KEEP_NL_RE = re.compile(f"[{_SUSPECT}\\t]")
_LEAD_RE = re.compile("[\\u00c2-\\u00f4\\u0400-\\u04ff]")


def is_clean(s: str, keep_newlines: bool = False) -> bool:
    """True when no cleaning step would change ``s`` (a cheap, conservative test: False may be wrong,
    True never is)."""
    if s[0] == " " or s[-1] == " " or "  " in s:
        return False
    if keep_newlines:
        if _SUSPECT_KEEP_NL_RE.search(s) is not None:
            return False
        if "\n" in s and (s[0] == "\n" or s[-1] == "\n" or "\n\n\n" in s or " \n" in s or "\n " in s):
            return False
    elif _SUSPECT_RE.search(s) is not None:
        return False
    if s.isascii():
        return True
    if not unicodedata.is_normalized("NFC", s):
        return False
    if _LEAD_RE.search(s) is not None and _mojibake_hint(s):
        return False
    return not _has_lone_marks(s)


def _has_lone_marks(s: str) -> bool:
    return _LONE_MARKS_RE.search(s) is not None


_HSPACE_RE = re.compile(r"[^\S\n]+")  # any whitespace except newline
_ANY_SPACE_RE = re.compile(r"\s+")
_SPACE_AROUND_NL_RE = re.compile(r" ?\n ?")
_MANY_NL_RE = re.compile(r"\n{3,}")

_FTFY_CONFIG = ftfy.TextFixerConfig(
    # We decode entities ourselves (to a fixed point, after HTML), and keep what the owner meant:
    # no quote uncurling, no ligature or width folding (those change the text, not its encoding).
    unescape_html=False,
    uncurl_quotes=False,
    fix_latin_ligatures=False,
    fix_character_width=False,
    normalization="NFC",
    explain=False,
)
#: Entity decoding stops after this many rounds even if the text still changes (a hostile input
#: like ``&amp;amp;amp;...`` 10,000 deep must not loop for ever; real Flickr text needs 1-3).
MAX_UNESCAPE_ROUNDS = 8
_FTFY_CHUNK = 100_000


def remove_surrogates(s: str) -> str:
    """Drop lone surrogates: they are not characters, and pyarrow (UTF-8) cannot encode them."""
    if s.isascii():
        return s
    return _SURROGATES_RE.sub("", s)


def looks_like_html(s: str) -> bool:
    return "<" in s and _TAG_RE.search(s) is not None


def html_to_text(s: str) -> str:
    """Text of an HTML fragment: link text kept, line breaks kept, script/style content dropped.

    The fragment is parsed by lexbor (through selectolax), never rendered or executed; entities are
    decoded once by the parser, as a browser would. Text with no tag-like ``<`` is returned as is.
    """
    if not looks_like_html(s):
        return s
    tree = LexborHTMLParser(s)
    # Each DOM pass only where its tags can occur (a CSS query costs more than parsing a short
    # description): most Flickr HTML is a link and a <br />.
    lower = s.lower()
    if any(f"<{t}" in lower for t in _DROP_TAGS):
        tree.strip_tags(_DROP_TAGS)
    if "<br" in lower:
        for node in tree.css("br"):
            node.replace_with("\n")
    if _BLOCK_TAG_RE.search(lower) is not None:
        for node in tree.css(_BLOCK_SELECTOR):
            node.insert_before("\n")
            node.insert_after("\n")
    root = tree.root
    return root.text(deep=True, separator="", strip=False) if root is not None else ""


def unescape_entities(s: str) -> str:
    """Decode HTML entities until nothing changes (``&amp;amp;quot;`` -> ``"``), at most a few rounds."""
    for _ in range(MAX_UNESCAPE_ROUNDS):
        if _ENTITY_HINT not in s:
            return s
        decoded = html.unescape(s)
        if decoded == s:
            return s
        s = decoded
    return s


def fix_mojibake(s: str) -> str:
    """ftfy's encoding repair, run only where it can matter.

    ASCII text cannot be mojibake; a text without a lead-byte/continuation-byte pair (or Cyrillic)
    cannot be the mojibake ftfy repairs; of the rest, ftfy's own badness test says whether a text has
    any sign of it, and only then is the full (slower) ``fix_text`` run.
    """
    if s.isascii() or not _mojibake_hint(s) or not is_bad(s):
        return s
    if len(s) <= _FTFY_CHUNK:
        return ftfy.fix_text(s, _FTFY_CONFIG)
    # ftfy leaves any single line longer than its max_decode_length (1M) unrepaired, so a huge
    # one-line text is repaired in pieces cut at whitespace (mojibake sequences contain none).
    pieces, i = [], 0
    while i < len(s):
        end = min(len(s), i + _FTFY_CHUNK)
        if end < len(s):
            cut = max(s.rfind(" ", i, end), s.rfind("\n", i, end))
            end = cut + 1 if cut > i else end
        pieces.append(ftfy.fix_text(s[i:end], _FTFY_CONFIG))
        i = end
    return "".join(pieces)


def to_nfc(s: str) -> str:
    if s.isascii() or unicodedata.is_normalized("NFC", s):
        return s
    return unicodedata.normalize("NFC", s)


def remove_controls(s: str) -> str:
    """Remove control, zero-width, bidi-control characters and combining marks with no base."""
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    s = _CONTROL_RE.sub("", s)
    if not s.isascii() and _has_lone_marks(s):
        s = _LONE_MARKS_RE.sub("", s)
    return s


def collapse_whitespace(s: str, keep_newlines: bool = False) -> str:
    """Runs of whitespace become one space; with ``keep_newlines``, line breaks survive (at most one
    blank line in a row) and each line is stripped. The result has no leading/trailing whitespace."""
    if not keep_newlines:
        return _ANY_SPACE_RE.sub(" ", s).strip()
    s = s.replace("\u2028", "\n").replace("\u2029", "\n\n").replace("\x85", "\n")
    s = _HSPACE_RE.sub(" ", s)
    s = _SPACE_AROUND_NL_RE.sub("\n", s)
    s = _MANY_NL_RE.sub("\n\n", s)
    return s.strip()


def clean_field(
    s: str,
    keep_newlines: bool = False,
    changed: set[str] | None = None,
    redact: Callable[[str], str] | None = None,
) -> str:
    """Run every cleaning step on one field; add the names of the steps that changed it to ``changed``.

    The order matters: surrogates first (later steps must see real characters); HTML before
    entities (the parser decodes one level, then ``unescape_entities`` finishes doubly escaped
    text); if decoding revealed markup (``&lt;b&gt;`` in the source), HTML runs once more; mojibake
    after entities (``&Atilde;&copy;`` is mojibake too); NFC after ftfy; controls and whitespace last
    (earlier steps can introduce both).

    ``redact`` (the harvest's :class:`~imagenet_captions.flickr.keys.Redactor`) runs on the input
    and again after every step that changed the text: each step can reveal a secret that was not
    there as written (an entity ``&#97;`` decodes to ``a``, ``ab<b></b>cd`` is ``abcd`` as text, a
    mojibake'd or real zero-width space between two halves is removed). ``changed`` then gets
    :data:`REDACTED`.
    """
    if not s:
        return ""
    if changed is None:
        changed = set()

    def hide(text: str) -> str:
        if redact is None:
            return text
        hidden = redact(text)
        if hidden != text:
            changed.add(REDACTED)
        return hidden

    s = hide(s)
    if is_clean(s, keep_newlines):
        return s  # the common case: nothing to do

    def step(name: str, before: str, after: str) -> str:
        if after != before:
            changed.add(name)
            after = hide(after)
        return after

    s = step("surrogates", s, remove_surrogates(s))
    if not s.isascii() or "<" in s or "&" in s:
        s = step("html", s, html_to_text(s))
        s = step("entities", s, unescape_entities(s))
        if looks_like_html(s):  # markup that was escaped in the source: strip it too
            s = step("html", s, html_to_text(s))
            s = step("entities", s, unescape_entities(s))
        s = step("mojibake", s, fix_mojibake(s))
        s = step("nfc", s, to_nfc(s))
        s = step("surrogates", s, remove_surrogates(s))  # &#xD800; decodes to one
    s = step("control", s, remove_controls(s))
    s = step("whitespace", s, collapse_whitespace(s, keep_newlines))
    return s


def redact_decoded(s: str, redact: Callable[[str], str], changed: set[str] | None = None) -> str:
    """``s`` without a secret as written (redacted in place) or as :func:`clean_field` would decode
    it (then ``s`` is replaced by its cleaned text, redacted: it is a text that carried our key).
    For what is stored as written rather than cleaned: a harvested answer, a record's license."""
    plain = redact(s)
    hidden: set[str] = set()
    cleaned = clean_field(plain, keep_newlines=True, changed=hidden, redact=redact)
    out = cleaned if REDACTED in hidden else plain
    if out != s and changed is not None:
        changed.add(REDACTED)
    return out
