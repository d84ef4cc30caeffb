"""One training run from a composed config: data -> tokenizer -> model -> task -> Trainer.fit -> final eval."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

import llmexp
from llmexp.artifacts.checkpoint import read_checkpoint, resolve_ckpt_path
from llmexp.artifacts.inference import tokenizer_from_checkpoint
from llmexp.artifacts.init_from import load_initial_weights
from llmexp.config.inherited import ANY, refuse_ignored_overrides
from llmexp.config.overrides import job_overrides, to_container
from llmexp.config.schema import validate_config
from llmexp.errors import ConfigError
from llmexp.evaluation.suite import evaluate_after_training
from llmexp.models.spec import FamilySpec, build_model, config_from_dict, family_of, saved_family
from llmexp.tokenizer import ChatTemplate
from llmexp.tracking.provenance import all_packages
from llmexp.tracking.provenance import collect as collect_provenance
from llmexp.tracking.quiet import silence_library_noise
from llmexp.tracking.secrets import REDACTED, redact, scrub_hydra_files
from llmexp.training.batch_size import tune_batch_size
from llmexp.training.callbacks.preemption import release_signals
from llmexp.training.combinations import check_combination, model_family
from llmexp.training.elastic import keep_global_batch
from llmexp.training.hints import next_steps
from llmexp.training.requeue import forget_requeue_checkpoints
from llmexp.training.slurm import follow_slurm_layout
from llmexp.training.strategies import check_hardware
from llmexp.training.trainer import build_trainer

log = logging.getLogger(__name__)


def _metric_values(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float | torch.Tensor)}


def build_model_config(cfg: DictConfig, vocab_size: int, resume: dict[str, Any] | None, init=None):
    """The model's config: from the checkpoint when resuming or from `init_from` weights (the weights decide the
    shape), else from cfg.model."""
    if resume is not None:
        return config_from_dict(resume["llmexp"]["model_config"])
    model_cfg = init.model_config if init is not None else instantiate(cfg.model, vocab_size=vocab_size)
    if model_cfg.vocab_size != vocab_size:
        raise ConfigError(
            f"init_from={cfg.get('init_from')} has a vocabulary of {model_cfg.vocab_size} but the tokenizer has "
            f"{vocab_size}; give a directory with its tokenizer.json, or a matching tokenizer"
        )
    if cfg.data.block_size > model_cfg.max_seq_len:
        raise ConfigError(
            f"data.block_size={cfg.data.block_size} exceeds model.max_seq_len={model_cfg.max_seq_len}; "
            "lower data.block_size or raise model.max_seq_len"
        )
    return model_cfg


def run_family(cfg: DictConfig, resume: dict[str, Any] | None, init) -> FamilySpec:
    """The model family of this run: the checkpoint's when resuming, the weights' with init_from, else cfg.model's."""
    if resume is not None:
        return saved_family(resume["llmexp"]["model_config"])
    if init is not None:
        return family_of(init.model_config)
    return model_family(cfg)


def _known(saved: Any) -> Any:
    """The saved config without the values redacted when it was saved (`pad_token_id` looks like a secret): those
    cannot be compared, so they are left out."""
    if isinstance(saved, dict):
        return {key: _known(value) for key, value in saved.items() if value != REDACTED}
    return saved


def refuse_overrides_ignored_by(cfg: DictConfig, ckpt_path: str | None, resume: dict | None, init) -> None:
    """Refuse model and tokenizer overrides that the checkpoint resumed from, or the init_from weights, replace."""
    if resume is not None:
        saved = _known(resume["llmexp"].get("config") or {})
        kept = {"model": saved.get("model"), "tokenizer": saved.get("tokenizer")}
        source = f"a resumed run keeps the model and tokenizer of ckpt_path={ckpt_path}"
        advice = f"drop the override, or start a new run from those weights with init_from={ckpt_path}"
        refuse_ignored_overrides(cfg, job_overrides(), kept, source, advice)
    elif init is not None:
        kept = {"model": init.model_config.to_dict(), **({"tokenizer": ANY} if init.tokenizer is not None else {})}
        source = f"init_from={cfg.init_from} brings the model's shape and its own tokenizer"
        refuse_ignored_overrides(_as_resolved(cfg, init), job_overrides(), kept, source, "drop the override")


def _as_resolved(cfg: DictConfig, init) -> DictConfig:
    """cfg with its model as the config class resolves it, the form init_from's config is saved in (`n_kv_head: null`
    is saved as the head count it stands for, so `model=gpt_tiny` equals the weights it was trained as)."""
    try:
        model = instantiate(cfg.model, vocab_size=init.model_config.vocab_size).to_dict()
    except (InstantiationException, TypeError, ValueError):  # not a model these weights can be: compared as written
        return cfg
    return OmegaConf.create({"model": model, "tokenizer": OmegaConf.to_container(cfg.get("tokenizer"), resolve=True)})


def keep_chat_template(datamodule, saved: dict[str, Any]) -> None:
    """Instruction data is rendered with the template the starting checkpoint was tuned with (SFT -> DPO, or a
    resumed run), not whatever data.template says, so the model keeps its format."""
    template = saved.get("chat_template")
    if template and getattr(datamodule, "template", None) is not None:
        if datamodule.template != ChatTemplate.from_dict(template):
            log.info("using the chat template stored with the starting checkpoint (not data.template)")
        datamodule.template = ChatTemplate.from_dict(template)


def close_loggers(trainer: L.Trainer) -> None:
    """Flush every logger; end the W&B run so the next job of a multirun starts its own."""
    for logger in trainer.loggers:
        logger.finalize("success")
        if isinstance(logger, WandbLogger) and trainer.is_global_zero:
            logger.experiment.finish()


def train(cfg: DictConfig) -> dict[str, float]:
    """Run training as configured; return the final metrics (also written to <run>/final_metrics.json)."""
    started = time.time()
    follow_slurm_layout(cfg)
    validate_config(cfg)
    silence_library_noise()
    run_dir = Path(cfg.paths.output_dir)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), run_dir)
    resume = read_checkpoint(ckpt_path) if ckpt_path else None
    keep_global_batch(cfg, resume)
    init = load_initial_weights(cfg.init_from) if cfg.get("init_from") and resume is None else None
    refuse_overrides_ignored_by(cfg, ckpt_path, resume, init)
    family = run_family(cfg, resume, init)
    check_combination(cfg, family)
    check_hardware(cfg, family.block_classes)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = instantiate(cfg.data, seed=cfg.seed)
    keep_chat_template(
        datamodule, resume["llmexp"] if resume else {"chat_template": init.chat_template} if init else {}
    )
    given_tokenizer = tokenizer_from_checkpoint(resume) if resume else (init.tokenizer if init else None)
    tokenizer = datamodule.prepare(instantiate(cfg.tokenizer), tokenizer=given_tokenizer)
    model_config = build_model_config(cfg, tokenizer.vocab_size, resume, init)
    model = build_model(model_config)
    if init is not None:
        model.load_state_dict(init.state_dict)
    if cfg.get("compile"):
        model.compile()  # in place: parameter names, and so checkpoints, stay those of the plain model
    resolved = redact(to_container(cfg))
    fingerprint = datamodule.fingerprint() if hasattr(datamodule, "fingerprint") else None
    provenance = collect_provenance(data_fingerprint=fingerprint, tokenizer_sha256=tokenizer.sha256())
    task = instantiate(cfg.task)(
        model=model,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        tokenizer=tokenizer,
        metadata={
            "llmexp_version": llmexp.__version__,
            "model_config": model_config.to_dict(),
            "tokenizer": tokenizer.to_str(),
            "config": resolved,
            "provenance": provenance,
        },
    )
    trainer = build_trainer(cfg, blocks=family.block_classes)
    n_params = sum(p.numel() for p in model.parameters())
    flops_per_token = model_config.flops_per_token(cfg.data.block_size)
    if trainer.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        tokenizer.save(run_dir / "tokenizer.json")
        scrub_hydra_files(run_dir, job_overrides())
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(resolved))
        (run_dir / "provenance.json").write_text(json.dumps({**provenance, "all_packages": all_packages()}, indent=2))
        log.info(
            "model: %s parameters (%s non-embedding), %s training FLOPs per token",
            f"{n_params:,}",
            f"{model_config.num_params():,}",
            f"{flops_per_token:,}",
        )
    for logger in trainer.loggers:
        logger.log_hyperparams({**resolved, "model/params": n_params, "model/flops_per_token": flops_per_token})
    tune_batch_size(cfg, task, datamodule)
    release_signals()
    try:
        trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        forget_requeue_checkpoints(trainer)
        metrics = _metric_values(trainer.callback_metrics)
        if cfg.eval.get("final_validation"):
            trainer.limit_val_batches = cfg.eval.limit_batches if cfg.eval.limit_batches is not None else 1.0
            (results,) = trainer.validate(task, datamodule=datamodule, verbose=False)
            metrics.update(_metric_values(results))
        if cfg.eval.get("tasks"):  # eval=suite / multiple_choice / ...: the benchmark tasks on the final model
            metrics.update(evaluate_after_training(trainer, task, tokenizer, cfg.eval))
    finally:
        close_loggers(trainer)
    metrics.update(step=trainer.global_step, params=n_params, flops_per_token=flops_per_token)
    metrics["seconds"] = round(time.time() - started, 1)
    if trainer.is_global_zero:
        (run_dir / "final_metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        print("\n" + "\n".join(next_steps(run_dir, datamodule, family, task.trains_language_model)))
    return metrics
