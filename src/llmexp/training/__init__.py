"""Optimisation, strategies, callbacks, checkpoints and the training run itself."""
