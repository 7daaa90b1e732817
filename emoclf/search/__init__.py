"""Hyperparameter search over config keys (`emoclf tune`), with Optuna."""
