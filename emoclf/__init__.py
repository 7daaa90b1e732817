"""emoclf: train, evaluate, compare and run facial-emotion classifiers from a YAML config."""

__version__ = "0.1.0"
