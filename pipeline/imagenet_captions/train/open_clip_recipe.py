"""Run open_clip's own trainer (``open_clip_train.main``) on our shards, in this project's environment.

Our shards already are what ``open_clip_train`` wants (``<key>.jpg`` + ``<key>.txt`` in WebDataset
tars, ``sizes.json`` for ``--train-num-samples``), so the recipe is plain open_clip::

    python -m open_clip_train.main --dataset-type webdataset \\
        --train-data 'out/shards/{00000..00099}.tar' --train-num-samples 448896 \\
        --model RN50 --batch-size 256 --lr 1e-3 --wd 0.1 --warmup 500 --epochs 32 \\
        --precision amp_bf16 --workers 8 --logs runs --name clip-rn50-openclip

That works as is with ``pip install 'open_clip_torch[training]'``, which pins
``webdataset<=0.2.86``. This project allows newer webdataset releases, whose ``tar_file_expander``
yields an end-of-shard marker ``{}`` that open_clip_train's own sample grouping does not expect
(``KeyError: 'fname'``; open_clip issue #935, webdataset issue #384). This module is the same
command with that one call fixed (``eof_value=None``, the upstream-suggested fix), applied only
when the installed webdataset has the marker. It also accepts ``--add-model-config PATH`` (a JSON
model config or a folder of them, ``open_clip.add_model_config``) so tests can use a tiny model::

    python -m imagenet_captions.train.open_clip_recipe [--add-model-config PATH] <open_clip_train.main args>

Unlike ``python -m open_clip_train.main``, which exits 0 when it refuses to run, a refusal here
exits 1.
"""

from __future__ import annotations

import functools
import inspect
import sys


def patch_webdataset_eof() -> bool:
    """Make open_clip_train's tar expansion skip webdataset's end-of-shard marker; True if patched."""
    import open_clip_train.data as ocd

    if "eof_value" not in inspect.signature(ocd.tar_file_expander).parameters:
        return False
    ocd.tar_file_expander = functools.partial(ocd.tar_file_expander, eof_value=None)
    return True


def main(argv: list[str] | None = None) -> int:
    import open_clip

    args = list(sys.argv[1:] if argv is None else argv)
    while "--add-model-config" in args:
        i = args.index("--add-model-config")
        open_clip.add_model_config(args[i + 1])
        del args[i : i + 2]
    patch_webdataset_eof()
    from open_clip_train.main import main as open_clip_main

    # open_clip_train.main returns -1 when it refuses (an experiment folder that already exists,
    # bad resume options) after printing why; a caller reading exit 0 would parse a stale log.
    rc = open_clip_main(args)
    return 0 if rc in (None, 0) else 1


if __name__ == "__main__":
    sys.exit(main())
