"""The run folder: its contract, checkpoints, metrics, loading and evaluating a run, ensembles, reports."""
