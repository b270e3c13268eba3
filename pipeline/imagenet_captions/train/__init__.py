"""Training on the shards: CLIP (open_clip's models) and a cross-entropy baseline.

Never imports Apache Beam. Modules: ``models`` (configs and builders), ``checkpoint`` (the
self-describing checkpoint format and ``load_for_inference``), ``data`` (the WebDataset loader with
GPU JPEG decode), ``loop`` (the training loop), ``command`` (``imagenet-captions train``).
"""
