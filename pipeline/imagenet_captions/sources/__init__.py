"""Readers of the inputs: the official release file, ImageNet's training images (folder or tar)."""
