"""Datasets: discovery, labels, decoding, cache, augmentation, download, inspection."""
