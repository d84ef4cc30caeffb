"""Pre-flight: compose and check every trial of a sweep, estimate what each needs, run one tiny step on the CPU.

Nothing here launches a job; `llmexp-train -m ... --preflight` submits the sweep only when the report is clean.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig
from omegaconf.errors import OmegaConfBaseException

from llmexp.config import config_dir
from llmexp.config.overrides import compose_config, validate_overrides
from llmexp.errors import UserError
from llmexp.preflight.estimate import Estimate, estimate
from llmexp.preflight.hardware import GIB, Hardware, cpu_memory_bytes, resolve_hardware
from llmexp.preflight.trials import expand_trials, is_optuna, sweeper_params
from llmexp.tokenizer import Tokenizer

# What the tiny step changes: one step and one validation batch, one CPU process, no loggers or extra callbacks.
_TINY_STEP = {
    "trainer.max_steps": "1",
    "trainer.val_check_interval": "1",
    "trainer.limit_val_batches": "1",
    "trainer.accelerator": "cpu",
    "trainer.devices": "1",
    "trainer.num_nodes": "1",
    "trainer.precision": "32-true",
    "trainer.accumulate_grad_batches": "1",
    "strategy": "single",
    "logger": "none",
    "callbacks": "minimal",
    "eval.final_validation": "false",
    "batch_size_finder.enabled": "false",
    "ckpt_path": "null",
}


@dataclass
class TrialCheck:
    """One trial's overrides, its estimate (when it composed), and what is wrong with it (None: nothing)."""

    overrides: list[str]
    estimate: Estimate | None = None
    problem: str | None = None


@dataclass
class PreflightReport:
    trials: list[TrialCheck]
    hardware: Hardware | None
    coverage: str
    tiny_step: str = "not run"
    tiny_step_ok: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.tiny_step_ok and all(t.problem is None for t in self.trials)

    def text(self) -> str:
        hw = self.hardware
        lines = [f"pre-flight: {len(self.trials)} trial(s) ({self.coverage})"]
        if hw is not None:
            lines.append(
                f"hardware per device: {hw.name}, {hw.memory_bytes / GIB:.1f} GiB, "
                f"{hw.peak_flops / 1e12:.2f} TFLOP/s peak ({hw.peak_source})"
            )
        for index, trial in enumerate(self.trials):
            label = " ".join(trial.overrides) or "(defaults)"
            est = trial.estimate
            if est is not None:
                lines.append(
                    f"  [{index}] {label}\n"
                    f"      params {est.params:,} | {est.world_size} device(s), {est.sharding}, {est.precision} | "
                    f"{est.flops_per_step / 1e12:.3g} TFLOP/step/device | {est.tokens_per_step:,} tokens/step | "
                    f"memory/device {est.memory_text()} | ~{est.seconds_per_step:.3g} s/step"
                )
            else:
                lines.append(f"  [{index}] {label}")
            if trial.problem:
                lines.append(f"      PROBLEM: {trial.problem}")
        lines.extend(f"note: {n}" for n in self.notes)
        lines.append(f"tiny step of trial [0] on CPU: {self.tiny_step}")
        bad = [i for i, t in enumerate(self.trials) if t.problem]
        if bad:
            lines.append(f"pre-flight FAILED: trial(s) {', '.join(f'[{i}]' for i in bad)} cannot run")
        elif not self.tiny_step_ok:
            lines.append("pre-flight FAILED: the tiny step of trial [0] did not run")
        else:
            lines.append("pre-flight passed")
        return "\n".join(lines)


def _first_line(err: BaseException) -> str:
    """The first line of the innermost cause (instantiate wraps a config's own ValueError in its own message)."""
    while err.__cause__ is not None:
        err = err.__cause__
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def vocab_size_of(cfg: DictConfig) -> int:
    """The vocabulary the run will have: a prepared dataset's tokenizer, else the tokenizer config's target size."""
    path = cfg.data.get("path")
    if path:
        first = path[0] if isinstance(path, ListConfig | list) else path
        tokenizer = Path(str(first)) / "tokenizer.json"
        if not tokenizer.is_file():
            raise UserError(f"data.path={first}: no tokenizer.json there; is it a folder written by llmexp-prepare?")
        return Tokenizer.load(tokenizer).vocab_size
    return int(cfg.tokenizer.vocab_size)


def _strategy_problem(cfg: DictConfig, choice: str, hardware: Hardware) -> str | None:
    text = f"{cfg.strategy.get('_target_', '')} {choice}".lower()
    gpu_only = "deepspeed" in text or ("fsdp" in text and "fsdp2" not in text and "modelparallel" not in text)
    if gpu_only and not hardware.is_gpu:
        return f"strategy={choice} needs CUDA GPUs, but the run is planned for {hardware.name} (preflight.device)"
    return None


def check_trial(config_name: str, overrides: list[str], workdir: Path, hardware_cache: dict) -> TrialCheck:
    """Compose one trial and estimate it; any mistake becomes the trial's `problem`, never an exception."""
    from hydra.utils import instantiate

    from llmexp.training.combinations import check_combination, model_family
    from llmexp.training.run import build_model_config

    trial = TrialCheck(list(overrides))
    try:
        try:
            cfg = compose_config(config_name, overrides, output_dir=workdir)
        except (HydraException, OmegaConfBaseException):
            validate_overrides(config_dir(), config_name, list(overrides))  # says which key and what is allowed
            raise
        pf = cfg.preflight
        key = (str(pf.device), str(cfg.trainer.precision))
        if key not in hardware_cache:
            hardware_cache[key] = resolve_hardware(pf.device, cfg.trainer.precision)
        hardware = hardware_cache[key]
        check_combination(cfg, model_family(cfg))
        model_config = build_model_config(cfg, vocab_size_of(cfg), None)
        instantiate(cfg.optimizer)
        choice = str(cfg.hydra.runtime.choices.get("strategy", ""))
        trial.problem = _strategy_problem(cfg, choice, hardware)
        trial.estimate = estimate(cfg, model_config, hardware, choice, float(pf.mfu))
        budget = (
            float(pf.memory_fraction) * hardware.memory_bytes / (1 if hardware.is_gpu else trial.estimate.world_size)
        )
        if trial.problem is None and trial.estimate.memory > budget:
            trial.problem = (
                f"does not fit: {trial.estimate.memory / GIB:.2f} GiB per device > {budget / GIB:.2f} GiB "
                f"({float(pf.memory_fraction):.0%} of {hardware.name}); lower data.batch_size, shard with "
                "strategy=fsdp/deepspeed_zero3, or set model.gradient_checkpointing=true"
            )
    except (UserError, HydraException, OmegaConfBaseException, ValueError, TypeError) as err:
        trial.problem = f"invalid: {_first_line(err)}"
    return trial


def tiny_step_overrides(overrides: Sequence[str]) -> list[str]:
    """The trial's own overrides (not Hydra's) with the tiny-step settings replacing theirs."""
    parsed = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    kept = [o for o in parsed if o.lstrip("+~").split("=", 1)[0] not in _TINY_STEP]
    return kept + [f"{k}={v}" for k, v in _TINY_STEP.items()]


def run_tiny_step(config_name: str, overrides: Sequence[str], workdir: Path) -> tuple[bool, str]:
    """Train the trial for one step (and validate one batch) in this process on the CPU."""
    from llmexp.training.run import train

    cfg = compose_config(config_name, tiny_step_overrides(overrides), output_dir=workdir / "tiny_step")
    captured = io.StringIO()
    quiet = [logging.getLogger(name) for name in ("lightning", "lightning.pytorch", "lightning.fabric")]
    levels = [q.level for q in quiet]
    try:
        for q in quiet:
            q.setLevel(logging.ERROR)
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            metrics = train(cfg)
    except Exception as err:
        return False, f"FAILED: {type(err).__name__}: {_first_line(err)}"
    finally:
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)
    loss = metrics.get("train/loss", metrics.get("val/loss"))
    return True, f"ok (step {int(metrics.get('step', 0))}, loss {loss:.3f})" if loss is not None else "ok"


def run_preflight(config_name: str, overrides: Sequence[str], tiny_step: bool = True) -> PreflightReport:
    """Check every trial of `overrides` (a sweep's command line); run one step of the first when all are fine."""
    with tempfile.TemporaryDirectory(prefix="llmexp-preflight-") as tmp:
        workdir = Path(tmp)
        first = expand_trials(overrides)[0]
        base = compose_config(config_name, first, output_dir=workdir)
        optuna = is_optuna(base.hydra)
        trial_lists = expand_trials(overrides, sweeper_params(base.hydra), corners=optuna)
        coverage = "corners of the Optuna search space" if optuna else "every trial of the sweep"
        hardware_cache: dict = {}
        trials = [check_trial(config_name, t, workdir, hardware_cache) for t in trial_lists]
        report = PreflightReport(trials, next(iter(hardware_cache.values()), None), coverage)
        if not tiny_step or not base.preflight.get("tiny_step", True):
            return report
        if not report.ok:
            report.tiny_step = "skipped (fix the trials above first)"
            return report
        est = trials[0].estimate
        if est is not None and est.weights + est.grads + est.optimizer > 0.5 * cpu_memory_bytes():
            report.tiny_step = f"skipped: {est.params:,} parameters do not fit in this machine's memory"
            report.notes.append("the tiny step needs the model to fit on this CPU; run pre-flight on a larger node")
            return report
        report.tiny_step_ok, report.tiny_step = run_tiny_step(config_name, trials[0].overrides, workdir)
        return report
