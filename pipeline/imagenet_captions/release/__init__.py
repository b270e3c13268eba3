"""Shipping a build: ``release`` (manifest, dataset card, Croissant) and ``download`` (verified, resumable).

Plain Python, no Beam. A release is a folder (or any static host) holding ``manifest.json`` at its
root: every published file's relative path, size and sha256, so a downloader can fetch, resume and
verify each file, and a rebuild from the user's own ImageNet can be proven equal to the publisher's.
"""
