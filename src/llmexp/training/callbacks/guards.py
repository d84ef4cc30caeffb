"""Divergence guards: a non-finite loss or gradient, or a loss spike, is caught before the optimizer step.

Actions: `skip` the update (the batch is consumed, the weights and optimizer state stay as they were), `stop` with a
report (`divergence_report.json` in the run folder and one line), or `rollback` the weights and optimizer state to
the newest valid checkpoint and go on with the next batch (the data stream is not replayed, as PaLM did for spikes).
Counts are logged as `guard/nonfinite`, `guard/spikes`, `guard/skipped`, `guard/rollbacks` and kept in checkpoints.
A run that skips more than `max_skipped_share` of its steps stops with a report as soon as that share is certain
(or at its end): its result would not mean what its config says.
"""

from __future__ import annotations

import json
import logging
import math
from collections import deque
from pathlib import Path
from typing import Any

import lightning as L
import torch

from llmexp.artifacts.checkpoint import newest_valid_checkpoint, read_checkpoint
from llmexp.errors import UserError
from llmexp.tasks.base import logging_step

log = logging.getLogger(__name__)

ACTIONS = ("skip", "stop", "rollback")
SPIKE_ACTIONS = ("warn", *ACTIONS)


def gradient_norm(module: L.LightningModule) -> torch.Tensor:
    """The norm a Task computes once per step for everyone who needs it; computed here for any other module."""
    if hasattr(module, "gradient_norm"):
        return module.gradient_norm()
    return torch.nn.utils.get_total_norm([p.grad for p in module.parameters() if p.grad is not None])


class TrainingDivergedError(UserError):
    """Training stopped because the loss or the gradients went bad (see the report it names)."""


class DivergenceGuard(L.Callback):
    """Checks every step's loss and gradient norm; a spike is a loss above mean + `spike_sigmas` x std of the last
    `spike_window` good steps (judged once `min_history` steps are in the window). Skipping (or rolling back) more
    than `max_skipped_share` of the steps stops the run."""

    def __init__(
        self,
        action: str = "skip",
        spike_action: str = "warn",
        spike_sigmas: float = 6.0,
        spike_window: int = 100,
        min_history: int = 20,
        max_rollbacks: int = 3,
        max_skipped_share: float = 0.25,
        report: str = "divergence_report.json",
    ):
        if action not in ACTIONS:
            raise ValueError(f"callbacks.divergence_guard.action={action!r}: choose one of {', '.join(ACTIONS)}")
        if spike_action not in SPIKE_ACTIONS:
            raise ValueError(
                f"callbacks.divergence_guard.spike_action={spike_action!r}: choose one of {', '.join(SPIKE_ACTIONS)}"
            )
        self.action, self.spike_action = action, spike_action
        self.spike_sigmas, self.min_history, self.max_rollbacks = spike_sigmas, min_history, max_rollbacks
        self.max_skipped_share = max_skipped_share
        self.report = report
        self.history: deque[float] = deque(maxlen=spike_window)
        self.counts = {"nonfinite": 0, "spikes": 0, "skipped": 0, "rollbacks": 0}
        self.events: list[dict[str, Any]] = []
        self._loss: torch.Tensor | None = None
        self._logged: dict[str, int] | None = None

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        self._loss = loss.detach()

    def is_spike(self, loss: float) -> bool:
        if len(self.history) < self.min_history:
            return False
        values = torch.tensor(list(self.history), dtype=torch.float64)
        return loss > float(values.mean()) + self.spike_sigmas * float(values.std())

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        grad_norm = float(gradient_norm(pl_module))
        loss = float(self._loss) if self._loss is not None else 0.0
        nonfinite = not (math.isfinite(loss) and math.isfinite(grad_norm))
        spike = not nonfinite and self.is_spike(loss)
        if trainer.world_size > 1:  # every rank must take the same branch
            nonfinite = trainer.strategy.reduce_boolean_decision(nonfinite, all=False)
            spike = not nonfinite and trainer.strategy.reduce_boolean_decision(spike, all=False)
        if not (nonfinite or spike):
            self.history.append(loss)
            return
        kind = "nonfinite" if nonfinite else "spikes"
        self.counts[kind] += 1
        event = {"global_step": trainer.global_step, "kind": kind, "loss": loss, "grad_norm": grad_norm}
        self.events.append(event)
        action = self.action if nonfinite else self.spike_action
        log.warning(
            "divergence guard: %s at step %d (loss %s, grad norm %s): %s",
            kind,
            event["global_step"],
            loss,
            grad_norm,
            action,
        )
        if action == "warn":
            return
        if action == "rollback" and self.counts["rollbacks"] >= self.max_rollbacks:
            action = "stop"
        if action == "stop":
            self.stop(trainer, event)
        if action == "rollback" and self.rollback(trainer, pl_module, optimizer):
            self.counts["rollbacks"] += 1
        self.counts["skipped"] += 1
        for param in pl_module.parameters():  # the optimizer leaves parameters without a gradient untouched
            param.grad = None
        if trainer.max_steps > 0 and self.counts["skipped"] > self.max_skipped_share * trainer.max_steps:
            self.stop_skipping(trainer, event)  # even if every later step were good, too many were skipped

    def rollback(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer) -> bool:
        """Weights and optimizer state from the newest valid checkpoint; False (the step is skipped) if none."""
        path = newest_valid_checkpoint(trainer.default_root_dir)
        if path is None:
            log.warning("divergence guard: no checkpoint to roll back to; skipping the step instead")
            return False
        checkpoint = read_checkpoint(path, require_metadata=False)
        pl_module.load_state_dict(checkpoint["state_dict"])
        optimizer.load_state_dict(checkpoint["optimizer_states"][0])
        self.events[-1].update(rolled_back_to=str(path), rolled_back_to_step=checkpoint.get("global_step"))
        log.warning("divergence guard: rolled back to %s (saved at step %s)", path, checkpoint.get("global_step"))
        return True

    def write_report(self, trainer: L.Trainer, event: dict[str, Any]) -> Path:
        path = Path(trainer.default_root_dir) / self.report
        if trainer.is_global_zero:
            path.parent.mkdir(parents=True, exist_ok=True)
            report = {**event, "counts": self.counts, "events": self.events, "recent_losses": list(self.history)}
            path.write_text(json.dumps(report, indent=2))
        return path

    def stop(self, trainer: L.Trainer, event: dict[str, Any]) -> None:
        path = self.write_report(trainer, event)
        raise TrainingDivergedError(
            f"training stopped at step {event['global_step']}: {event['kind']} (loss {event['loss']:.4g}, "
            f"grad norm {event['grad_norm']:.4g}); report: {path}; resume from the last checkpoint with a lower "
            "optimizer.lr, or set callbacks.divergence_guard.action=skip"
        )

    def stop_skipping(self, trainer: L.Trainer, event: dict[str, Any]) -> None:
        skipped, steps = self.counts["skipped"], max(trainer.global_step, event["global_step"] + 1)
        path = self.write_report(trainer, event)
        raise TrainingDivergedError(
            f"training skipped {skipped} of {steps} steps so far, more than "
            f"callbacks.divergence_guard.max_skipped_share={self.max_skipped_share:g} of trainer.max_steps="
            f"{trainer.max_steps}; report: {path}; lower optimizer.lr or check the data, then resume"
        )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if logging_step(trainer) or self.counts != self._logged:  # a count that changes is logged at once
            pl_module.log_dict({f"guard/{k}": float(v) for k, v in self.counts.items()}, on_step=True, on_epoch=False)
            self._logged = dict(self.counts)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if any(self.counts.values()) and trainer.is_global_zero:
            log.warning("divergence guard: %s", ", ".join(f"{k} {v}" for k, v in self.counts.items()))
        if self.events and self.counts["skipped"] > self.max_skipped_share * trainer.global_step:
            self.stop_skipping(trainer, self.events[-1])  # a run without max_steps (max_epochs) ends here

    def state_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "history": list(self.history), "events": self.events}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.counts.update(state_dict["counts"])
        self.history.extend(state_dict["history"])
        self.events = list(state_dict["events"])
