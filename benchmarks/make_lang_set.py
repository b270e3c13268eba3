"""Assemble the labelled set of short multilingual texts used to measure language identification.

Source: the gettext message catalogs installed on a Debian system (``/usr/share/locale/<lang>/
LC_MESSAGES/*.mo``: apt, coreutils, dpkg, glib, gtk, PackageKit, ...). Each translated message is a
short human-written text whose language is known from the catalog it is in; English comes from the
same catalogs' source strings (msgids). We keep title-like texts: 2-6 words, at most 48 characters,
mostly letters, no format placeholders, and for translations only those that differ from the
English source. 150 per language, picked by a hash of the text (deterministic, no shuffling state).

These are interface strings, not Flickr titles: same length, different register (no place names,
no camera jargon). Usage: python benchmarks/make_lang_set.py [--locale-dir /usr/share/locale]
"""

from __future__ import annotations

import argparse
import gettext
import hashlib
import re
from pathlib import Path

#: language code (ISO 639-1, our label) -> locale directory name
LANGS = {
    "en": None, "de": "de", "fr": "fr", "es": "es", "it": "it", "nl": "nl", "pt": "pt", "ja": "ja",
    "zh": "zh_CN", "ru": "ru", "pl": "pl", "sv": "sv", "ko": "ko", "tr": "tr", "ar": "ar", "he": "he",
}  # fmt: skip
PER_LANG = 150
_BAD = re.compile(r"[%{}<>_\\/|=@#$*\[\]]|\.\.\.|--|\d")


def _ok(text: str, cjk: bool) -> bool:
    text = text.strip()
    if not text or "\n" in text or len(text) > 48 or _BAD.search(text):
        return False
    letters = sum(c.isalpha() for c in text)
    if letters < 0.7 * len(text.replace(" ", "")):
        return False
    n_words = len(text.split())
    return (2 <= len(text) <= 20) if cjk else (2 <= n_words <= 6)


def _catalog(path: Path) -> dict[str, str]:
    with path.open("rb") as f:
        try:
            cat = gettext.GNUTranslations(f)._catalog  # type: ignore[attr-defined]
        except Exception:
            return {}
    return {k: v for k, v in cat.items() if isinstance(k, str) and isinstance(v, str) and k}


def build(locale_dir: Path) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    english: set[str] = set()
    for lang, folder in LANGS.items():
        if folder is None:
            continue
        texts: set[str] = set()
        for mo in sorted((locale_dir / folder / "LC_MESSAGES").glob("*.mo")):
            for msgid, msgstr in _catalog(mo).items():
                if _ok(msgid, cjk=False):
                    english.add(msgid.strip())
                if msgstr.strip() != msgid.strip() and _ok(msgstr, cjk=lang in ("ja", "zh", "ko")):
                    texts.add(msgstr.strip())
        rows += [(lang, t) for t in _pick(texts)]
    rows = [("en", t) for t in _pick(english)] + rows
    return rows


def _pick(texts: set[str]) -> list[str]:
    return sorted(texts, key=lambda t: hashlib.sha256(t.encode()).hexdigest())[:PER_LANG]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--locale-dir", type=Path, default=Path("/usr/share/locale"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "data" / "lang_short_texts.tsv")
    args = ap.parse_args()
    rows = build(args.locale_dir)
    args.out.write_text(
        "lang\ttext\n" + "".join(f"{lang}\t{text}\n" for lang, text in rows), encoding="utf-8"
    )
    counts: dict[str, int] = {}
    for lang, _ in rows:
        counts[lang] = counts.get(lang, 0) + 1
    print(f"wrote {len(rows)} rows to {args.out}: {counts}")


if __name__ == "__main__":
    main()
