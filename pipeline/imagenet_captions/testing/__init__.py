"""Generators and loopback servers for tests, benchmarks and the demo's stand-ins.

Nothing in the build, train or eval paths imports this package: it makes data (a text corpus,
learnable shards, evaluation folders) and serves it (a static file host with faults), so that the
real code can be exercised on this machine without ImageNet, Flickr or the network.
"""
