"""imagenet-captions: build, refresh, ship and study ImageNet-Captions.

The flow of data is sources -> flickr -> text -> images -> shards (see build.py), then
train and eval, which never import Beam.
"""

__version__ = "0.1.0"
