"""The alternative Flickr client for OAuth-signed calls, through the ``flickrapi`` package.

``flickrapi`` does the signing and the HTTP; the quota, retries, classification and redaction are
ours (:mod:`.protocol`, :mod:`.keys`), so its answers are the same :class:`Answer` objects as the
aiohttp client's. It makes one call at a time (it is synchronous), so it suits a small refresh,
not a full harvest. ``flickrapi`` is imported only when a call is made.
"""

from __future__ import annotations

import random
import time
from typing import Any

from imagenet_captions.flickr.keys import Redactor
from imagenet_captions.flickr.limiter import Gcra
from imagenet_captions.flickr.protocol import (
    Answer,
    CallStats,
    InvalidKeyError,
    KeyRejected,
    RetryPolicy,
    Transient,
    classify_response,
    gave_up,
)


class FlickrapiFetcher:
    """The alternative client, for users who need OAuth-signed calls: ``flickrapi`` does the
    signing and the HTTP; the quota, retries, classification and redaction are ours, so its
    answers are the same :class:`Answer` objects (one call at a time: it is synchronous).

        flickr = flickrapi.FlickrAPI(key, secret, format="json")
        flickr.authenticate_via_browser(perms="read")
        answer = FlickrapiFetcher(flickr).get_info(3743398102)
    """

    def __init__(self, flickr: Any, qps: float = 0.95, retry: RetryPolicy | None = None):
        self.flickr = flickr
        self.limiter = Gcra(qps)
        self.retry = retry or RetryPolicy()
        self.redact = Redactor(
            [
                str(flickr.flickr_oauth.oauth.client.client_key or ""),
                str(flickr.flickr_oauth.oauth.client.client_secret or ""),
            ]
        )
        self.stats = CallStats()
        self.rng = random.Random()

    def get_info(self, photo_id: int) -> Answer:
        import flickrapi.exceptions
        import requests

        last = "no call made"
        for attempt in range(1, self.retry.max_attempts + 1):
            time.sleep(max(0.0, self.limiter.reserve() - time.monotonic()))
            try:
                body = self.flickr.photos.getInfo(
                    photo_id=str(photo_id), format="json", nojsoncallback="1", timeout=self.retry.timeout
                )
                answer, outcome = classify_response(photo_id, 200, bytes(body), None, self.redact)
            except KeyRejected:
                self.stats.add("code_100")
                raise InvalidKeyError("Flickr says the API key is invalid (code 100)") from None
            except Transient as t:
                self.stats.add(t.outcome)
                last = t.reason
            except (flickrapi.exceptions.FlickrError, requests.RequestException) as e:
                # flickrapi raises for any HTTP status but 200 (so no Retry-After here).
                self.stats.add("http_error")
                last = self.redact(f"{type(e).__name__}: {e}")
            else:
                self.stats.add(outcome)
                answer.attempts = attempt
                return answer
            if attempt < self.retry.max_attempts:
                time.sleep(self.retry.backoff(attempt, self.rng))
        return gave_up(photo_id, self.redact(f"gave_up: {last}"), self.retry.max_attempts)
