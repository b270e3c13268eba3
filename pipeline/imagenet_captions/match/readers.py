"""``open_corpus``: the one place a ``--corpus KIND:PATH`` is dispatched to its reader.

Apart from :mod:`~imagenet_captions.match.corpora` (what the readers share) so that no reader and
the module they import import each other; each reader is imported only when its kind is asked for.
"""

from __future__ import annotations

from imagenet_captions.match.corpora import Corpus, ReadOptions, split_corpus


def open_corpus(spec: str, options: ReadOptions | None = None) -> Corpus:
    """The corpus ``spec`` names, checked (see the module docstring)."""
    options = options or ReadOptions()
    kind, path = split_corpus(spec)
    if kind == "parquet":
        from imagenet_captions.match.corpus_parquet import ParquetCorpus

        return ParquetCorpus(path, options)
    if kind == "jsonl":
        from imagenet_captions.match.corpus_jsonl import JsonlCorpus

        return JsonlCorpus(path, options)
    if kind == "webdataset":
        from imagenet_captions.match.corpus_webdataset import WebDatasetCorpus

        return WebDatasetCorpus(path, options)
    from imagenet_captions.match.corpus_release import ReleaseCorpus

    return ReleaseCorpus(kind, path, options)
