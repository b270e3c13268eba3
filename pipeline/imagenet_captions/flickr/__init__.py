"""The live path: ImageNet's URL list -> Flickr photo ids -> ``flickr.photos.getInfo`` answers -> a store.

The contract: :mod:`.urls` turns each URL-list line into a photo id or a named outcome
(``not_flickr``, ``flickr_no_id``, ``malformed`` ...); the harvest (:mod:`.service`, :mod:`.pipeline`,
``imagenet-captions harvest``) asks Flickr for each photo at the key's quota (:mod:`.limiter`, or
:mod:`.redis_limiter` shared across machines) through :mod:`.client` (what an answer means and
when to retry: :mod:`.protocol`; the key and its redaction: :mod:`.keys`, and in every form a
reader decodes: :mod:`.scrub`; OAuth-signed calls: :mod:`.flickrapi_fetcher`), and writes every
answer to the response store before it counts as
done (:mod:`.store`, the reading side and the store's one name; :mod:`.journal`, the write-ahead
journal compacted to Parquet; :mod:`.segments`, the files and the row type); a rerun asks for
nothing already answered. The build reads a store through ``imagenet_captions.sources.responses``. :mod:`.export` writes a store in the release format and
diffs it against a release (read by :mod:`.release_json`, which the build's ``release:`` source uses too); :mod:`.fake_server` and :mod:`.replay` are the loopback Flickr the
tests and the demo use. The API key never reaches a log, a report or an output.
"""
