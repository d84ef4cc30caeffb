"""Callbacks, one module each; configs name them by full path (llmexp.training.callbacks.<module>.<Class>)."""

from llmexp.training.callbacks.loss_curve import LossCurvePlot
from llmexp.training.callbacks.progress import LogProgress, progress_bar
from llmexp.training.callbacks.samples import SampleGeneration

__all__ = ["LogProgress", "LossCurvePlot", "SampleGeneration", "progress_bar"]
