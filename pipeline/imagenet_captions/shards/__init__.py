"""Shard writing (WebDataset tars + Parquet), sizes.json, the manifest and validation."""
