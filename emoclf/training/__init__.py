"""The one training loop, optimizers and schedules."""
