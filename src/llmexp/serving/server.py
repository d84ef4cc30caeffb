"""Build and run the server from conf/serve.yaml: load the checkpoint safely, start the engine, run uvicorn."""

from __future__ import annotations

from pathlib import Path

import torch
from fastapi import FastAPI
from omegaconf import DictConfig

from llmexp.artifacts.checkpoint import read_checkpoint
from llmexp.artifacts.inference import model_from_checkpoint, pick_device, refuse_unmerged, tokenizer_from_checkpoint
from llmexp.errors import CheckpointError, ConfigError
from llmexp.models.spec import FAMILIES, saved_family
from llmexp.serving.app import Server, ServeSettings, create_app
from llmexp.serving.arena import add_feedback_and_arena
from llmexp.serving.engine import BatchingEngine
from llmexp.tokenizer import ChatTemplate

BATCHING = ("continuous", "static")


def model_name(ckpt_path: str, configured: str | None) -> str:
    """The served model's id: as configured, else the run folder's name (outputs/runs/<date>/<time>/checkpoints/x)."""
    if configured:
        return configured
    path = Path(ckpt_path).resolve()
    return path.parent.parent.name if path.parent.name == "checkpoints" else path.stem


def check_servable(path: str, checkpoint: dict, program: str = "llmexp-serve") -> None:
    """Only models that generate text are served; say what to do with a classifier, an encoder-only family or an
    unmerged LoRA checkpoint."""
    metadata = checkpoint["llmexp"]
    if metadata.get("task") == "classification":
        raise CheckpointError(f"ckpt_path={path}: a classification checkpoint; {program} needs a language model")
    refuse_unmerged(path, checkpoint)
    family = saved_family(metadata.get("model_config", {}))
    if not family.can_generate:
        generating = ", ".join(name for name, spec in FAMILIES.items() if spec.can_generate)
        raise CheckpointError(
            f"ckpt_path={path}: model family {family.name!r} does not generate text, so {program} cannot use it "
            f"(families that generate: {generating}); score it with llmexp-eval eval=val or export it"
        )


def build_app(cfg: DictConfig) -> FastAPI:
    """The app for cfg.ckpt_path (weights read with weights_only=True: nothing in the file is executed), with the
    feedback route and the rating page when serve.feedback_path is set."""
    serve = cfg.serve
    if serve.max_batch_size < 1 or serve.max_tokens_limit < 1 or serve.max_body_bytes < 1:
        raise ConfigError(
            "serve.max_batch_size, serve.max_tokens_limit and serve.max_body_bytes must be >= 1 "
            f"(got {serve.max_batch_size}, {serve.max_tokens_limit}, {serve.max_body_bytes})"
        )
    if serve.batching not in BATCHING:
        raise ConfigError(f"serve.batching={serve.batching!r}: choose one of {', '.join(BATCHING)}")
    if serve.cpu_threads:
        # Idle OpenMP workers spin; with the event loop on the same cores that made one request 70x slower here.
        torch.set_num_threads(serve.cpu_threads)
    server = load_server(cfg, cfg.ckpt_path, serve.model_name)
    app = create_app(server)
    if serve.get("feedback_path"):
        add_feedback_and_arena(app, server, cfg, lambda path: load_server(cfg, path, None))
    return app


def load_server(cfg: DictConfig, ckpt_path: str, name: str | None) -> Server:
    """A Server (model, tokenizer, batching engine, chat template) for one checkpoint, under cfg.serve's limits."""
    serve = cfg.serve
    checkpoint = read_checkpoint(ckpt_path)
    check_servable(ckpt_path, checkpoint)
    model = model_from_checkpoint(checkpoint).to(pick_device(cfg.device)).eval()
    tokenizer, metadata = tokenizer_from_checkpoint(checkpoint), checkpoint["llmexp"]
    del checkpoint
    engine = BatchingEngine(
        model,
        tokenizer.eos_id,
        max_batch_size=serve.max_batch_size,
        max_wait_ms=serve.max_wait_ms,
        continuous=serve.batching == "continuous",
    )
    settings = ServeSettings(
        model_name=model_name(ckpt_path, name),
        max_tokens_limit=serve.max_tokens_limit,
        max_body_bytes=serve.max_body_bytes,
        request_timeout_s=serve.request_timeout_s,
    )
    template = ChatTemplate.from_dict(metadata.get("chat_template"))
    return Server(engine, tokenizer, settings, template)


def serve(cfg: DictConfig) -> None:
    import uvicorn

    app = build_app(cfg)
    print(f"llmexp-serve: {cfg.ckpt_path} on http://{cfg.serve.host}:{cfg.serve.port}", flush=True)
    uvicorn.run(
        app,
        host=cfg.serve.host,
        port=cfg.serve.port,
        log_level=cfg.serve.log_level,
        limit_concurrency=cfg.serve.max_connections,
        timeout_graceful_shutdown=5,
    )
