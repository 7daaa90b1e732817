"""Low-level helpers: atomic file writes, safe YAML, torchrun helpers, text helpers."""
