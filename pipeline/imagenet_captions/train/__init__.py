"""Training on the shards: CLIP (open_clip's models) and a cross-entropy baseline.

Never imports Apache Beam. Modules: ``options`` (``TrainOptions``, every option checked once),
``presets`` (the paper's recipes as ``TrainOptions``, with their sources), ``models`` (configs and
builders), ``checkpoint`` (the self-describing checkpoint format and ``load_for_inference``), the
WebDataset loader (``shard_spec`` -> ``stream``, the workers' side -> ``augment``, the crop and
the CPU decode, or ``device_decode``, the GPU decode -> ``data``, the ``ShardLoader`` the loop
uses), ``step`` and ``loop`` (setup, resume check, checkpoint payload and the steps), ``command``
(``imagenet-captions train``), ``open_clip_recipe`` (open_clip's own trainer on our shards). The
generated test shards live in ``imagenet_captions.testing``.
"""
