"""emoclf: train, evaluate, compare and run facial-emotion classifiers from a YAML config."""
from emoclf.utils.version import __version__

__all__ = ["__version__"]
