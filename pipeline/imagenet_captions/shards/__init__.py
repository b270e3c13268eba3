"""The shard stage: one shard's records and image references in, a WebDataset tar and a Parquet file out.

The contract: a shard's writer receives every item of its shard in one group (records, image
references, keys dropped upstream, and a seed so that no planned shard is missing); it joins them
by key (:mod:`.join`: one sample per key, or a named Drop), keeps the shard when its input digest
equals the one recorded (:mod:`.incremental`), else writes it (:mod:`.writer`: images read, checked,
re-encoded or resized there, each file under a temporary name then renamed), and returns a
``ShardResult``. The build's last step writes ``sizes.json``, ``manifest.json`` and ``report.json``
(:mod:`.report`); :mod:`.layout` holds the names and the key-to-shard hash; :mod:`.validate` checks a
build after the fact, and against a release's manifest.
"""
