"""The live path: ImageNet's URL list -> Flickr photo ids -> ``flickr.photos.getInfo`` answers -> a store.

The contract: :mod:`.urls` turns each URL-list line into a photo id or a named outcome
(``not_flickr``, ``flickr_no_id``, ``malformed`` ...); the harvest (:mod:`.service`, :mod:`.pipeline`,
``imagenet-captions harvest``) asks Flickr for each photo at the key's quota (:mod:`.limiter`, or
:mod:`.redis_limiter` shared across machines) through :mod:`.client`, with retries, and writes every
answer to the response store (:mod:`.store`: a write-ahead journal compacted to Parquet) before it
counts as done; a rerun asks for nothing already answered. The build reads a store through
``imagenet_captions.sources.responses``. :mod:`.export` writes a store in the release format and
diffs it against a release; :mod:`.fake_server` and :mod:`.replay` are the loopback Flickr the
tests and the demo use. The API key never reaches a log, a report or an output.
"""
