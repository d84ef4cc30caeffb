"""The loss-curve PNG written at the end of every run."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only

from llmexp.tracking.metrics import read_metrics_csv
from llmexp.tracking.plots import plot_curves

log = logging.getLogger(__name__)


class LossCurvePlot(L.Callback):
    """At the end of fit, plot train/val loss and bits per byte from the CSV logger's metrics.csv."""

    def __init__(self, filename: str = "loss_curve.png"):
        self.filename = filename

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        csv_logger = next((lg for lg in trainer.loggers if isinstance(lg, CSVLogger)), None)
        if csv_logger is None:
            log.warning("LossCurvePlot needs logger=csv (or one that includes it); no plot written")
            return
        csv_logger.save()
        metrics_file = Path(csv_logger.experiment.metrics_file_path)
        if not metrics_file.exists():
            return
        folder = Path(trainer.default_root_dir)
        try:
            path = plot_curves({folder.name: read_metrics_csv(metrics_file)}, folder / self.filename, title=str(folder))
        except ValueError as err:
            log.warning("no loss curve: %s", err)
            return
        log.info("loss curve: %s", path)
