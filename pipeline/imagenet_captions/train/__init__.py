"""Training on the shards: CLIP (open_clip's models) and a cross-entropy baseline.

Never imports Apache Beam. Modules: ``options`` (``TrainOptions``, every option checked once),
``presets`` (the paper's recipes as ``TrainOptions``, with their sources), ``models`` (configs and
builders), ``checkpoint`` (the self-describing checkpoint format and ``load_for_inference``),
``data`` (the WebDataset loader with GPU JPEG decode), ``loop`` (setup, resume check, checkpoint
payload and the steps), ``command`` (``imagenet-captions train``), ``open_clip_recipe`` (open_clip's
own trainer on our shards). The generated test shards live in ``imagenet_captions.testing``.
"""
