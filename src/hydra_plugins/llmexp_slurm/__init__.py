"""llmexp's SLURM launcher, found by Hydra's plugin discovery (plugins must live in the hydra_plugins package)."""
