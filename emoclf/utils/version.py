"""The version of emoclf (read by pyproject.toml too, so it is written only here)."""

__version__ = "0.1.0"
