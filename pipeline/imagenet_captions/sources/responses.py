"""``responses:<dir>``: a harvested Flickr response store as a metadata source.

Every image id in the store is one input; one that is not an ImageNet image id
(:func:`imagenet_captions.classes.parse_image_id`) is ``bad_filename``. Its photo's effective answer as of ``--as-of`` (see
:mod:`imagenet_captions.flickr.store`) is a raw record when ``ok``, else a :class:`Drop` named
``flickr_not_found``, ``flickr_failed`` (an error code) or ``flickr_gave_up`` (retries exhausted).
Records come straight from the stored answers, keyed by image id, and are coerced by the same
function as the release file's (:func:`imagenet_captions.sources.release.text_record`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime

from imagenet_captions import fsio
from imagenet_captions.classes import parse_image_id
from imagenet_captions.errors import UsageError
from imagenet_captions.flickr import store
from imagenet_captions.outcomes import RECORDS, Drop
from imagenet_captions.records import RawRecord
from imagenet_captions.sources.release import item_ranges, text_record


class ResponsesSource:
    """A response store read as ``(image id, answer)`` pairs sorted by image id; a part is a range of
    those pairs. Choosing the effective answers reads the store without the answers' JSON; only the
    ``ok`` answers of the part's range are parsed, in a second pass over the segments."""

    def __init__(self, path: str, as_of: datetime | None):
        self.path, self.as_of = path, as_of
        self._count: int | None = None

    def count(self) -> int:
        if self._count is None:
            if fsio.is_remote(self.path) or not os.path.isdir(self.path):
                raise UsageError(f"response store not found: {self.path}")
            self._count = store.store_summary(self.path, self.as_of)["image_total"]
        return self._count

    def parts(self, n: int) -> list[tuple[int, int]]:
        return item_ranges(self.count(), n)

    def publisher(self) -> None:
        """None: harvested answers are raw, the build cleans them."""
        return None

    def read(self, part: tuple[int, int]) -> Iterator[RawRecord | Drop]:
        start, stop = part
        answers = store.effective_answers(self.path, self.as_of, with_raw=False)
        pairs = sorted(
            ((iid, a) for a in answers.values() for iid in a.image_ids), key=lambda p: (p[0], p[1].photo_id)
        )[start:stop]
        raw = store.raw_of(self.path, (a for _, a in pairs if a.status == "ok"))
        for image_id, a in pairs:
            if parse_image_id(image_id) is None:  # a store of an older version, or edited by hand
                yield Drop(RECORDS, "bad_filename", image_id[:200])
            elif a.status == "ok":
                fields = store.photo_fields(raw[(a.photo_id, a.run_id, a.fetched_at)])
                yield text_record(image_id, image_id.split("_", 1)[0], {**fields, "photo_id": a.photo_id})
            else:
                yield Drop(RECORDS, f"flickr_{a.status if a.final else 'gave_up'}", image_id, a.error or "")
