"""The shard stage: one shard's records and image references in, a WebDataset tar and a Parquet file out.

The contract: a shard's writer receives every item of its shard in one group (records, image
references, keys dropped upstream, and a seed so that no planned shard is missing); it joins them
by key (:mod:`.join`: one :class:`~imagenet_captions.records.Sample` per key, or a named Drop), keeps
the shard when its input digest equals the one recorded (:mod:`.incremental`), else writes it
(:mod:`.writer`: images read, checked, re-encoded or resized by :mod:`.images`, each file under a
temporary name, all renamed together), and returns a ``ShardResult``.

One writer per format, each one call that knows nothing about records or where samples come from,
for every pipeline that writes these formats (the build; ``match`` writes its tars with the same
call, from its own samples), so their bytes follow one rule:

- :func:`.tar.write_tar` ``(path, Iterable[TarSample]) -> HashingFile``: a sample is a key and its
  members by extension (``jpg``, ``txt``, ``json``, ``cls`` for a build), written in order with fixed
  metadata; :func:`.tar.to_json_bytes` is the one encoding of a ``.json`` member;
- :func:`.parquet.write_parquet` ``(path, pyarrow.Table) -> HashingFile``: zstd, pyarrow's defaults.

Both return the file closed under its temporary name with its size and sha256 taken as it was
written (:mod:`.hashfile`); the caller commits a shard's files together (``commit_all``), and a
failure leaves none. The names and the key-to-shard hash are :mod:`imagenet_captions.layout`'s;
:mod:`.report` holds the format's pieces of a build's ending (accounting, ``sizes.json``);
:mod:`.validate` checks a build after the fact, and against a release's manifest.
"""
