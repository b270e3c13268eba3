"""MATCH: the Flickr photo id from a line of ImageNet's URL list (``fall11_urls.txt``).

The list has one ``<wnid>_<n><TAB><url>`` per line, plain or gzipped, LF or CRLF, and not always
valid UTF-8 (it was scraped from the web in 2008-2011). Lines are therefore handled as *bytes*: the
image id must be ASCII, while a URL that is not UTF-8 is decoded as Latin-1 so that a Flickr id in it
is still found. Every line gets exactly one outcome, so the report accounts for all of them:

- ``matched``: a Flickr photo id was found;
- ``not_flickr``: a well-formed line whose URL is on another host;
- ``flickr_no_id``: a Flickr host, but a URL with no photo id in it (a logo, a user page);
- ``other_synset``: a line of a class outside the chosen set (by default ImageNet-1k's 1,000
  classes: the list has 21,841 synsets, and a harvest of all 14 million lines would take a key
  over a year), whatever its URL;
- ``malformed``: no TAB, an image id that is not one (:func:`imagenet_captions.classes.parse_image_id`:
  ``n<8 digits>_<1 to 9 digits, no leading zero>``, ASCII), no URL;
- ``blank``: an empty line (counted, never an error).
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from imagenet_captions.classes import parse_image_id
from imagenet_captions.errors import UsageError

#: Outcomes of one line, in report order.
OUTCOMES = ("matched", "not_flickr", "flickr_no_id", "other_synset", "malformed", "blank")

# A static file: <id>_<secret>[_<size>].<ext>; secrets (and original secrets) are hex.
_STATIC_FILE = re.compile(
    r"\A([0-9]+)_[0-9a-f]+(?:_[0-9a-z]{1,2})?\.(?:jpe?g|png|gif)\Z", re.IGNORECASE | re.ASCII
)
#: A photo id as the store keeps it (an int64 column): ASCII digits, no more than 19 of them.
_PHOTO_ID = re.compile(r"\A[0-9]{1,19}\Z", re.ASCII)
_MAX_PHOTO_ID = 2**63 - 1
_PAGE_HOSTS = {"flickr.com", "www.flickr.com", "m.flickr.com", "secure.flickr.com", "flickr.net"}
_BASE58 = "123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
_BASE58_INDEX = {c: i for i, c in enumerate(_BASE58)}


@dataclass(frozen=True)
class UrlLine:
    """The outcome of one line: ``photo_id`` is set only when ``outcome == "matched"``."""

    outcome: str
    image_id: str | None = None
    photo_id: int | None = None
    url: str | None = None


def base58_decode(text: str) -> int:
    """Decode a ``flic.kr/p/<code>`` short code (Flickr's base58: no 0, O, I, l)."""
    if not text:
        raise ValueError("empty base58 code")
    value = 0
    for ch in text:
        if ch not in _BASE58_INDEX:
            raise ValueError(f"not a Flickr base58 character: {ch!r}")
        value = value * 58 + _BASE58_INDEX[ch]
    return value


def base58_encode(value: int) -> str:
    """The inverse of :func:`base58_decode` (used to make ``flic.kr`` fixtures)."""
    if value <= 0:
        raise ValueError("photo ids are positive")
    out = []
    while value:
        value, rem = divmod(value, 58)
        out.append(_BASE58[rem])
    return "".join(reversed(out))


def _photo_id(text: str) -> int | None:
    """``text`` as a photo id, or None: ASCII digits only (``str.isdigit`` and ``int`` also take
    other scripts' digits, and ``int`` raises on superscripts and on more than 4,300 digits), and
    within the store's int64 column."""
    if _PHOTO_ID.fullmatch(text) is None:
        return None
    value = int(text)
    return value if 0 < value <= _MAX_PHOTO_ID else None


def _is_static_host(host: str) -> bool:
    # farmN.static.flickr.com, static.flickr.com, farmN.staticflickr.com, live.staticflickr.com,
    # cN.staticflickr.com, photosN.flickr.com (the 2004-2006 hosts).
    return (
        host.endswith(".staticflickr.com")
        or host == "staticflickr.com"
        or host.endswith("static.flickr.com")
        or re.fullmatch(r"photos\d*\.flickr\.com", host) is not None
    )


def _is_flickr_host(host: str) -> bool:
    return host in _PAGE_HOSTS or host == "flic.kr" or host.endswith(".flickr.com") or _is_static_host(host)


def photo_id_from_url(url: str) -> int | None:
    """The photo id in a Flickr URL, or None when the URL has none.

    Raises ``ValueError`` when the URL is not on a Flickr host at all (the caller counts
    ``not_flickr``), so "not Flickr" and "Flickr without an id" stay distinct.
    """
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    host = (parts.hostname or "").lower().rstrip(".")
    if not _is_flickr_host(host):
        raise ValueError("not a Flickr host")
    segments = [s for s in parts.path.split("/") if s]
    if host == "flic.kr":
        if len(segments) >= 2 and segments[0] == "p":
            try:
                value = base58_decode(segments[1])
            except ValueError:
                return None
            return value if value <= _MAX_PHOTO_ID else None
        return None
    if _is_static_host(host):
        if segments:
            m = _STATIC_FILE.fullmatch(segments[-1])
            if m:
                return _photo_id(m.group(1))
        return None
    # Photo pages: /photos/<user>/<id>[/...]; the old /photo.gne?id=<id>.
    if len(segments) >= 3 and segments[0] == "photos":
        return _photo_id(segments[2])
    if segments and segments[0] == "photo.gne":
        ids = parse_qs(parts.query).get("id", [])
        return _photo_id(ids[0]) if ids else None
    return None


def parse_line(raw: bytes | str) -> UrlLine:
    """Classify one line of the URL list (bytes as read; a trailing CR/LF is ignored)."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    line = raw.rstrip(b"\r\n")
    if not line.strip():
        return UrlLine("blank")
    if b"\t" not in line:
        return UrlLine("malformed")
    key_bytes, _, url_bytes = line.partition(b"\t")
    try:
        image_id = key_bytes.decode("ascii").strip()
    except UnicodeDecodeError:
        return UrlLine("malformed")
    if parse_image_id(image_id) is None:
        return UrlLine("malformed")
    try:
        url = url_bytes.decode("utf-8").strip()
    except UnicodeDecodeError:
        url = url_bytes.decode("latin-1").strip()
    if not url or any(c.isspace() for c in url):
        return UrlLine("malformed", image_id=image_id, url=url or None)
    try:
        photo_id = photo_id_from_url(url)
    except ValueError:
        return UrlLine("not_flickr", image_id=image_id, url=url)
    if photo_id is None or photo_id <= 0:
        return UrlLine("flickr_no_id", image_id=image_id, url=url)
    return UrlLine("matched", image_id=image_id, photo_id=photo_id, url=url)


def in_synsets(line: UrlLine, synsets: frozenset[str] | None) -> UrlLine:
    """``line``, or ``other_synset`` when its class is not in ``synsets`` (None: keep all)."""
    if synsets is None or line.image_id is None or line.image_id.split("_", 1)[0] in synsets:
        return line
    return UrlLine("other_synset", image_id=line.image_id, url=line.url)


def is_gzip(path: str) -> bool:
    """Gzip is recognised by its magic bytes, not by the file name."""
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"\x1f\x8b"
    except OSError as e:
        raise UsageError(f"cannot read URL list {path}: {e.strerror}") from None


def iter_lines(path: str) -> Iterator[bytes]:
    """The raw lines of a URL list, plain or gzipped (a truncated gzip is a clear error)."""
    opener = gzip.open if is_gzip(path) else open
    try:
        with opener(path, "rb") as f:
            yield from f
    except (EOFError, gzip.BadGzipFile) as e:
        raise UsageError(f"URL list {path} is a damaged gzip file: {e}") from None
