"""Sweeps that survive a cluster: a resumable, failure-tolerant Optuna study kept in the sweep folder."""
