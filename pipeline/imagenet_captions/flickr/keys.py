"""The Flickr API key: where it is read from, and how it is kept out of everything written.

The key is read where a client is created, from the environment or a key file, never from a
pipeline option or a command-line argument (those reach logs and Beam's job description). Every
message that leaves the harvest (log line, exception, stored answer) goes through a
:class:`Redactor` built from the keys, so even a key echoed back by a server is removed; a stage
that must hide the keys without calling Flickr (the build's text cleaning) is given a redactor,
which holds digests of the keys, never the keys (:func:`build_redactor`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence

from imagenet_captions.errors import UsageError

KEY_ENV = "FLICKR_API_KEY"


def load_api_keys(key_file: str | None = None, environ: Mapping[str, str] | None = None) -> list[str]:
    """The API keys: from ``key_file`` (one per line, ``#`` comments) or ``$FLICKR_API_KEY``
    (comma-separated). Several keys are for teams whose keys are separately registered."""
    environ = os.environ if environ is None else environ
    if key_file:
        try:
            with open(key_file, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise UsageError(f"cannot read the API key file {key_file}: {e.strerror}") from None
        keys = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
        source = f"the API key file {key_file}"
    else:
        keys = [k.strip() for k in environ.get(KEY_ENV, "").split(",") if k.strip()]
        source = f"${KEY_ENV}"
    if not keys:
        raise UsageError(
            f"no Flickr API key in {source}: set {KEY_ENV} (comma-separated) or pass --api-key-file"
        )
    if len(set(keys)) != len(keys):
        raise UsageError(f"{source} lists the same API key twice")
    return keys


class Redactor:
    """Removes secrets from text: each secret verbatim, and any ``api_key=...`` value whatever it is.

    It holds no secret: only each one's length and a keyed BLAKE2b digest (a random salt per
    redactor). So a redactor can be pickled into a Beam pipeline (the build's text stage takes
    one through its options: :func:`build_redactor`) and printed, and neither the pipeline's
    description nor a log carries a key. To find a secret, it hashes every window of the secret's
    length inside each run of characters of the secret's kind (ASCII letters and digits, with ``-``
    and ``_`` if the secret has them, else any non-space): a run that long is rare in text, so
    most texts cost one regular-expression scan.

    It finds a secret as written; the forms a reader decodes (a JSON ``\\u`` escape, an HTML entity,
    a tag splitting it) are the callers': they redact after every decoding step
    (:mod:`.scrub` in the harvest, ``text.clean.clean_field`` in the build).
    """

    _PARAM = re.compile(r"(api_key=)[^&\s'\"]+", re.IGNORECASE)
    #: The kinds of characters a secret is made of, narrowest first; the first that holds it is used.
    _KINDS = (r"0-9A-Za-z", r"0-9A-Za-z_\-", r"^\s", r"\s\S")

    def __init__(self, secrets: Sequence[str]):
        self._key = os.urandom(16)  # the digests' salt (BLAKE2b's key), not a secret of ours
        self._hasher = hashlib.blake2b(key=self._key, digest_size=16)
        found: dict[tuple[str, int], set[bytes]] = {}
        for secret in secrets:
            if secret:
                kind = next(k for k in self._KINDS if re.fullmatch(f"[{k}]+", secret))
                found.setdefault((kind, len(secret)), set()).add(self._digest(secret))
        # Longest first, so that a secret that contains another is removed whole.
        self._groups = [
            (re.compile(f"[{kind}]{{{length},}}"), length, frozenset(digests))
            for (kind, length), digests in sorted(found.items(), key=lambda item: -item[0][1])
        ]
        self._count = sum(len(digests) for _, _, digests in self._groups)

    def _digest(self, data: str | bytes | memoryview) -> bytes:
        hasher = self._hasher.copy()
        hasher.update(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
        return hasher.digest()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_hasher"]  # a hash object does not pickle: it is made again from its key
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._hasher = hashlib.blake2b(key=self._key, digest_size=16)

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return "Redactor(secrets not shown)"  # the same for every redactor: it is part of a build's options

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where the secrets are in ``text``: sorted ``[start, end)`` spans, overlapping ones merged."""
        found = []
        for run, length, digests in self._groups:
            for m in run.finditer(text):
                word = m.group()
                # An ASCII run is hashed from one encoding of it, a window at a time (most runs are).
                data: str | memoryview = memoryview(word.encode("ascii")) if word.isascii() else word
                for i in range(len(word) - length + 1):
                    if self._digest(data[i : i + length]) in digests:
                        found.append((m.start() + i, m.start() + i + length))
        merged: list[tuple[int, int]] = []
        for start, end in sorted(found):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((start, end))
        return merged

    def __call__(self, text: object) -> str:
        out = str(text)
        if self._groups:
            pieces, at = [], 0
            for start, end in self.spans(out):
                pieces += [out[at:start], "[REDACTED]"]
                at = end
            out = "".join(pieces) + out[at:] if pieces else out
        return self._PARAM.sub(r"\1[REDACTED]", out)


def build_redactor(key_file: str | None = None, environ: Mapping[str, str] | None = None) -> Redactor | None:
    """A redactor of the harvest's keys for a command that does not call Flickr (the build's text
    stage, ``harvest --export``/``--diff``): from ``key_file`` when given, else from
    ``$FLICKR_API_KEY`` when set, else None (no key known, nothing to hide beyond what the harvest
    already hid)."""
    environ = os.environ if environ is None else environ
    if key_file is None and not environ.get(KEY_ENV, "").strip(" ,"):
        return None
    return Redactor(load_api_keys(key_file, environ))
