"""``release:`` / ``text-release:``: ImageNet-Captions itself, whose rows know their class.

The rows come from the build's own metadata sources (:func:`imagenet_captions.sources.open_source`),
so they are read, checked and dropped exactly as ``build`` reads them (``malformed_record``,
``bad_filename``, ...). The caption is the project's caption: a text release's published records carry
it as their publisher made it; the official release's raw records (title, tags, description) go
through the text stage with its default options, as a build would make their captions. Each row's wnid is its label, which lets the
report say how often a caption names its own class, another, or none.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from imagenet_captions.errors import UsageError
from imagenet_captions.match.corpora import BATCH_ROWS, Batch, CorpusFile, ReadOptions
from imagenet_captions.outcomes import RECORDS, Drop
from imagenet_captions.records import Published


class ReleaseCorpus:
    """A release file or a text-release folder (see the module docstring)."""

    labelled = True
    with_images = False
    hashes_in_read = False

    def __init__(self, kind: str, path: str, options: ReadOptions):
        from imagenet_captions import fsio
        from imagenet_captions.sources import open_source

        if options.text_column or options.url_column or options.key_column or options.keep_columns:
            raise UsageError(
                f"--corpus {kind}: takes no --text-column, --url-column, --key-column or --keep-column"
            )
        self.kind = kind
        try:
            self.source = open_source(f"{kind}:{path}")
            self._rows = self.source.count()
        except UsageError as e:
            raise UsageError(f"--corpus: {e}") from None
        self.files: tuple[CorpusFile, ...]
        if kind == "release":
            self.files = (CorpusFile(path, fsio.size(path) or 0, self._rows),)
        else:
            rels = [rel for _, rel in self.source.parts(1)]  # a text release's part is one of its files
            self.files = tuple(
                CorpusFile(fsio.join(path, rel), fsio.size(fsio.join(path, rel)) or 0) for rel in rels
            )
        self.schema = pa.schema([])
        self._stage: Any = None

    def rows(self) -> int:
        return self._rows

    def parts(self, n: int) -> list[Any]:
        return list(self.source.parts(n))

    def _row(self, item: Any) -> tuple[str, str, str | None] | Drop:
        """``(key, wnid, caption)`` of a source's entry: a text release's published caption, or the
        caption the text stage makes of a raw record."""
        if isinstance(item, Published):
            record = item.record
            return record["key"], record["wnid"], record.get("caption")
        if self._stage is None:
            from imagenet_captions.text import TextStage

            self._stage = TextStage()
        outcome = self._stage.process(item)
        if outcome.record is None:
            return Drop(RECORDS, outcome.reason or "malformed_record", outcome.key or item["key"])
        return item["key"], item["wnid"], outcome.record["caption"]

    def read(self, part: Any) -> Iterator[Batch]:
        captions: list[str | None] = []
        keys: list[str] = []
        labels: list[str] = []
        drops: list[Drop] = []
        for item in self.source.read(part):
            row = item if isinstance(item, Drop) else self._row(item)
            if isinstance(row, Drop):
                drops.append(row)
            else:
                keys.append(row[0])
                labels.append(row[1])
                captions.append(row[2])
            if len(captions) + len(drops) >= BATCH_ROWS:
                yield self._batch(captions, keys, labels, drops)
                captions, keys, labels, drops = [], [], [], []
        if captions or drops:
            yield self._batch(captions, keys, labels, drops)

    @staticmethod
    def _batch(captions: list[str | None], keys: list[str], labels: list[str], drops: list[Drop]) -> Batch:
        table = pa.table({"_": pa.nulls(len(captions))}).select([])
        return Batch(0, captions, table, keys=keys, labels=labels, drops=drops)
