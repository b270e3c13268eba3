"""The demo's live path without the network: fabricate a URL list and Flickr answers for release
records, then harvest them from the loopback :class:`~imagenet_captions.flickr.fake_server.FakeFlickr`.

Everything is deterministic in ``seed``: photo ids, the URL form of each line (every form the
matcher knows, so the demo exercises them all), and which photos answer code 1 (photo not found,
about one in five, and at least one when there are two records or more), so the build report has
``not_found`` images to account for.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from imagenet_captions.flickr import store
from imagenet_captions.flickr.export import normalise_tag
from imagenet_captions.flickr.fake_server import NOT_FOUND, FakeFlickr
from imagenet_captions.flickr.keys import KEY_ENV
from imagenet_captions.flickr.urls import base58_encode

log = logging.getLogger(__name__)

#: The dummy key the demo's loopback server accepts; not a Flickr key.
DEMO_KEY = "demo0000000000000000000000000000"

_URL_FORMS = (
    "http://farm{farm}.static.flickr.com/{server}/{pid}_{secret}.jpg",
    "http://farm{farm}.staticflickr.com/{server}/{pid}_{secret}_z.jpg",
    "http://static.flickr.com/{server}/{pid}_{secret}.jpg",
    "https://live.staticflickr.com/{server}/{pid}_{secret}_b.jpg",
    "https://c{c}.staticflickr.com/{farm}/{server}/{pid}_{secret}_m.jpg",
    "http://photos{c}.flickr.com/{pid}_{secret}.jpg",
    "https://www.flickr.com/photos/{owner}/{pid}/",
    "https://flic.kr/p/{b58}",
)


def _photo_answer(rec: dict[str, Any], pid: int, rng: random.Random) -> dict[str, Any]:
    """A getInfo answer in Flickr's shape (strings for some numbers, ``_content``, raw tags)."""
    owner = f"{rng.randrange(10_000_000, 99_999_999)}@N0{rng.randrange(0, 9)}"
    secret = hashlib.sha1(str(pid).encode()).hexdigest()[:10]
    server = str(rng.randrange(1000, 9999))
    tags = [
        {
            "id": f"{rng.randrange(1_000_000)}-{pid}-{i}",
            "author": owner,
            "authorname": "demo owner",
            "raw": str(t),
            "_content": normalise_tag(str(t)),
            "machine_tag": 0,
        }
        for i, t in enumerate(rec.get("tags") or [])
    ]
    posted = str(1_150_000_000 + rng.randrange(100_000_000))
    return {
        "photo": {
            "id": str(pid),
            "secret": secret,
            "server": server,
            "farm": rng.randrange(1, 10),
            "dateuploaded": posted,
            "isfavorite": 0,
            "license": str(rng.choice([0, 1, 2, 4, 5])),
            "safety_level": "0",
            "rotation": 0,
            "owner": {"nsid": owner, "username": "demo owner", "realname": "", "location": ""},
            "title": {"_content": str(rec.get("title") or "")},
            "description": {"_content": str(rec.get("description") or "")},
            "visibility": {"ispublic": 1, "isfriend": 0, "isfamily": 0},
            "dates": {
                "posted": posted,
                "taken": "2008-07-21 11:45:06",
                "takengranularity": "0",
                "lastupdate": posted,
            },
            "views": str(rng.randrange(10_000)),
            "comments": {"_content": str(rng.randrange(5))},
            "tags": {"tag": tags},
            "urls": {
                "url": [{"type": "photopage", "_content": f"https://www.flickr.com/photos/{owner}/{pid}/"}]
            },
            "media": "photo",
        },
        "stat": "ok",
    }


def flickr_fixtures_for(records: list[dict[str, Any]], seed: int = 0) -> tuple[list[str], dict[int, dict]]:
    """URL lines (``<image id>\\t<flickr url>``) and getInfo answers for release-format records.

    Returns ``(lines, responses)``: ``responses`` maps photo id -> answer (``ok``, or code 1 for
    the photos chosen to be gone). Records are taken in image-id order, so the output does not
    depend on the order given."""
    rng = random.Random(seed)
    ordered = sorted(records, key=lambda r: str(r["filename"]))
    n = len(ordered)
    gone = {i for i in range(n) if rng.random() < 0.2}
    if n >= 2 and not gone:
        gone = {n - 1}
    if len(gone) == n and n:
        gone.discard(0)
    lines: list[str] = []
    responses: dict[int, dict] = {}
    used: set[int] = set()
    for i, rec in enumerate(ordered):
        image_id = os.path.splitext(str(rec["filename"]))[0]
        pid = rng.randrange(1_000_000_000, 9_999_999_999)
        while pid in used:
            pid += 1
        used.add(pid)
        answer = _photo_answer(rec, pid, rng)
        photo = answer["photo"]
        url = _URL_FORMS[i % len(_URL_FORMS)].format(
            farm=photo["farm"],
            server=photo["server"],
            pid=pid,
            secret=photo["secret"],
            c=rng.randrange(1, 9),
            owner=photo["owner"]["nsid"],
            b58=base58_encode(pid),
        )
        lines.append(f"{image_id}\t{url}")
        responses[pid] = dict(NOT_FOUND) if i in gone else answer
    return lines, responses


@contextmanager
def _env_key(key: str) -> Iterator[None]:
    old = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = key
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(KEY_ENV, None)
        else:
            os.environ[KEY_ENV] = old


def demo_harvest(
    urls_file: str, responses: dict[int, dict], out_dir: str, beam_args: list[str] | None = None
) -> str:
    """Serve ``responses`` on 127.0.0.1, harvest ``urls_file`` into ``out_dir`` with the dummy key
    (set in the environment for this call only), stop the server. Returns the responses dir, for
    ``build --metadata responses:<dir>``."""
    from imagenet_captions.flickr.pipeline import run_harvest

    with FakeFlickr(responses, keys=[DEMO_KEY], qps=200) as server, _env_key(DEMO_KEY):
        report = run_harvest(
            urls_file,
            out_dir,
            dict(
                endpoint=server.url,
                qps=100.0,
                timeout=5.0,
                base_delay=0.05,
                max_delay=0.5,
                progress_every=5.0,
            ),
            beam_args=beam_args,
        )
    log.info("demo harvest: %s", report["fetched"])
    return store.responses_dir(out_dir)
