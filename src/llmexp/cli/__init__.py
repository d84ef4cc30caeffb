"""Console entry points: compose the config with Hydra, call one function."""
