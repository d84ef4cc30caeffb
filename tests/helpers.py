"""Test-only callbacks, importable by `_target_` from configs composed in tests."""

import json
import os
import signal
import time

import lightning as L


class StopAtStep(L.Callback):
    """End fit after `step` optimizer steps, as if the run had been interrupted there (the last checkpoint is saved)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.step:
            trainer.should_stop = True


class RecordBatches(L.Callback):
    """Append each training batch's step and input ids to a jsonl file (to compare the batch sequence of two runs)."""

    def __init__(self, path: str):
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        with open(self.path, "a") as handle:
            handle.write(json.dumps({"step": trainer.global_step, "input_ids": batch["input_ids"].tolist()}) + "\n")


class RecordLoss(L.Callback):
    """Append each optimizer step's training loss (rank 0) to a jsonl file, flushed at once so a killed run keeps it.

    Recorded during the step (before backward), so no other callback's end-of-step action can come first."""

    def __init__(self, path: str):
        self.path = path

    def on_before_backward(self, trainer, pl_module, loss):
        if trainer.is_global_zero:
            record = {"step": trainer.global_step + 1, "loss": float(loss), "pid": os.getpid()}
            with open(self.path, "a") as handle:
                handle.write(json.dumps(record) + "\n")


class Throttle(L.Callback):
    """Sleep before every step, so a test can kill a tiny run part-way through instead of after it has finished."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        time.sleep(self.seconds)


class InjectNaN(L.Callback):
    """Multiply the model's output by `factor` (NaN by default; a large number makes a loss spike) on the given steps,
    and record the sum of all weights before and after each of those steps to a jsonl file."""

    def __init__(self, steps: list[int], path: str, factor: float = float("nan")):
        self.steps, self.path, self.factor = set(steps), path, factor
        self._hook = None

    @staticmethod
    def weight_sum(pl_module) -> float:
        return float(sum(p.detach().double().sum() for p in pl_module.parameters()))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step in self.steps:
            self._before = self.weight_sum(pl_module)
            self._hook = pl_module.model.register_forward_hook(lambda module, args, out: out * self.factor)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
            record = {"step": trainer.global_step - 1, "before": self._before, "after": self.weight_sum(pl_module)}
            with open(self.path, "a") as handle:
                handle.write(json.dumps(record) + "\n")


class CrashDuringSave(L.Callback):
    """Kill this process with SIGKILL half-way through writing its `on_save`-th checkpoint file."""

    def __init__(self, on_save: int):
        import torch

        real_save, calls = torch.save, []

        def half_then_die(obj, handle, *args, **kwargs):
            calls.append(1)
            if len(calls) < on_save:
                return real_save(obj, handle, *args, **kwargs)
            real_save(obj, handle, *args, **kwargs)
            handle.flush()
            handle.truncate(handle.tell() // 2)
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        torch.save = half_then_die


class SignalWhenBuilt(L.Callback):
    """When the trainer's callbacks are built (before training starts), send this process `name`, as a scheduler
    would; refuse if nothing handles it, so a missing handler fails the test instead of ending the test session."""

    def __init__(self, name: str = "SIGTERM"):
        signum = signal.Signals[name]
        if not callable(signal.getsignal(signum)):
            raise RuntimeError(f"no handler for {name}: it would end this process")
        os.kill(os.getpid(), signum)


class HoldValidation(L.Callback):
    """Once per run folder: when the validation after `step` starts, write `marker` and wait (to be killed there)."""

    def __init__(self, step: int, marker: str, seconds: float = 120.0):
        self.step, self.marker, self.seconds = step, marker, seconds

    def on_validation_start(self, trainer, pl_module):
        if trainer.global_step == self.step and not trainer.sanity_checking and not os.path.exists(self.marker):
            with open(self.marker, "w") as handle:
                handle.write(str(os.getpid()))
            time.sleep(self.seconds)


class RecordValidations(L.Callback):
    """Append the step and process of every finished validation during fit to a jsonl file."""

    def __init__(self, path: str):
        self.path = path

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking and trainer.is_global_zero:
            with open(self.path, "a") as handle:
                handle.write(json.dumps({"step": trainer.global_step, "pid": os.getpid()}) + "\n")
