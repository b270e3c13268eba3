"""Keeping the API key out of what the harvest stores and exports, in every form a reader decodes.

A server that echoes the key back may write it as is (the :class:`~.keys.Redactor` finds it), but
also as JSON escapes (``\\u0061...``: the raw text does not hold it, ``json.loads`` of it does), as
HTML entities (``&#97;``, ``&#x61;``, ``&lowbar;``, doubly escaped ``&amp;#97;``) or split by a tag
(``ab<b></b>cd``), which the build's text cleaning decodes. So an answer is checked in its decoded
form: every string of the parsed JSON, and what the text cleaning makes of it
(:func:`imagenet_captions.text.clean.redact_decoded`: ``clean_field`` redacts after each of its
steps). A string whose cleaned text held a secret is replaced by that text, redacted (its HTML is
lost: it is a string that carried our key). The answer is stored as parsed and re-serialised only when something
was hidden, otherwise as received.

Used where answers are made (:func:`.protocol.classify_response`) and, for stores written before
this existed, where they leave the store (``harvest --export`` and ``--diff``, with the keys of
``$FLICKR_API_KEY`` or ``--api-key-file``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from imagenet_captions.text.clean import redact_decoded

Redact = Callable[[str], str]
#: What ``json.dumps`` writes as an escape whose letters or digits could spell part of a key.
_CONTROLS = re.compile("[\x00-\x1f]")


def scrub_text(text: str, redact: Redact) -> str:
    """``text`` without a secret as written or as the text cleaning would decode it."""
    return redact_decoded(text, redact)


def scrub_value(value: Any, redact: Redact) -> Any:
    """A parsed JSON value with :func:`scrub_text` applied to every string in it, keys included."""
    if isinstance(value, str):
        return scrub_text(value, redact)
    if isinstance(value, list):
        return [scrub_value(v, redact) for v in value]
    if isinstance(value, dict):
        return {scrub_text(str(k), redact): scrub_value(v, redact) for k, v in value.items()}
    return value


def scrub_json(text: str, data: Any, redact: Redact) -> str:
    """The JSON ``text`` (parsed: ``data``) to store: ``text`` itself when neither it nor any decoded
    string in it holds a secret, else ``data`` scrubbed and serialised again.

    Serialising writes a control character as an escape (``\\n``, ``\\u0000``), whose letter or hex
    digits could join the characters after it into a key's spelling; in that (contrived) case every
    control character becomes a space and the data is serialised once more, so the bytes hold no
    secret either."""
    scrubbed = scrub_value(data, redact)
    if scrubbed == data and redact(text) == text:
        return text
    out = _dumps(scrubbed)
    if redact(out) != out:
        out = _dumps(_map_strings(scrubbed, lambda s: _CONTROLS.sub(" ", s)))
    return out


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [_map_strings(v, fn) for v in value]
    if isinstance(value, dict):
        return {fn(str(k)): _map_strings(v, fn) for k, v in value.items()}
    return value
