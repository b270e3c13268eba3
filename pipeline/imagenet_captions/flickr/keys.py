"""The Flickr API key: where it is read from, and how it is kept out of everything written.

The key is read where a client is created, from the environment or a key file, never from a
pipeline option or a command-line argument (those reach logs and Beam's job description). Every
message that leaves the harvest (log line, exception, stored answer) goes through a
:class:`Redactor` built from the keys, so even a key echoed back by a server is removed.
"""

from __future__ import annotations

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
    """Removes secrets from text: each key verbatim, and any ``api_key=...`` value whatever it is."""

    _PARAM = re.compile(r"(api_key=)[^&\s'\"]+", re.IGNORECASE)

    def __init__(self, secrets: Sequence[str]):
        # Longest first, so that a key that contains another is removed whole.
        self.secrets = sorted((s for s in secrets if s), key=len, reverse=True)

    def __call__(self, text: object) -> str:
        out = str(text)
        for s in self.secrets:
            out = out.replace(s, "[REDACTED]")
        return self._PARAM.sub(r"\1[REDACTED]", out)
