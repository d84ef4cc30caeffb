"""llmexp: build large language models end to end with Hydra configs and Lightning."""

__version__ = "0.1.0"
