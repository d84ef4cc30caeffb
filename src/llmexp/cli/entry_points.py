"""Every console command of llmexp: its primary config, the function it runs, and what its `--help` says. The
function is named by its import path and imported only when the command runs, so `--help` and TAB completion stay
fast (they never import torch or Lightning)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EntryPoint:
    program: str
    config_name: str  # the primary config in llmexp/conf
    target: str  # "module:function" run with the composed config
    summary: str
    examples: tuple[str, ...]
    preflight: bool = False  # accepts --preflight (check every trial of a sweep first)
    resumable: bool = False  # accepts resume=<run folder> (llmexp.config.resume)


ENTRY_POINTS = {
    e.program: e
    for e in (
        EntryPoint(
            "llmexp-train",
            "train",
            "llmexp.training.objective:train_objective",
            "Train a model: pretraining (GPT/Llama causal LM, BERT masked LM, T5 span corruption), continued "
            "pretraining, instruction SFT or classification, on one device, several (ddp, fsdp2, fsdp, deepspeed) or "
            "a SLURM cluster (-m hydra/launcher=slurm). Each run writes its folder under outputs/runs/; a stopped run "
            "continues with resume=<run folder>.",
            (
                "llmexp-train experiment=smoke",
                "llmexp-train model=gpt_tiny optimizer.lr=1e-3 trainer.max_steps=200",
                "llmexp-train resume=outputs/runs/<date>/<time>",
                "llmexp-train -m optimizer.lr=1e-4,3e-4,1e-3 trainer.max_steps=100",
                "llmexp-train experiment=smoke strategy=fsdp2 trainer.devices=2 trainer.accelerator=cpu",
            ),
            preflight=True,
            resumable=True,
        ),
        EntryPoint(
            "llmexp-prepare",
            "prepare",
            "llmexp.prepare.pipeline:prepare_from_config",
            "Turn raw text (files, Hugging Face datasets, the embedded corpus) into cleaned, redacted, deduplicated, "
            "tokenised shards with a manifest and a data card, under outputs/prepared/<name>/. An interrupted "
            "prepare resumes where it stopped.",
            (
                "llmexp-prepare name=shakespeare 'source.paths=[../shared/data/tinyshakespeare.txt]'",
                "llmexp-prepare name=docs source=pydocs dedup=exact",
                "llmexp-train data=shards data.path=outputs/prepared/shakespeare",
            ),
        ),
        EntryPoint(
            "llmexp-eval",
            "evaluate",
            "llmexp.evaluation.run:evaluate",
            "Evaluate a checkpoint: held-out perplexity and bits per byte, multiple-choice benchmarks (scored as "
            "lm-evaluation-harness does), generation and code tasks, or any lm-eval task.",
            (
                "llmexp-eval ckpt_path=outputs/runs/<date>/<time>/checkpoints/last.ckpt eval=suite",
                "llmexp-eval ckpt_path=... eval=multiple_choice eval.tasks=[piqa] eval.data_dir=../shared/data",
                "llmexp-eval ckpt_path=... eval=suite 'eval.tasks=[heldout]'",
            ),
        ),
        EntryPoint(
            "llmexp-generate",
            "generate",
            "llmexp.serving.generate:generate_text",
            "Continue a prompt with a checkpoint (an encoder-decoder answers it), greedy or sampled.",
            (
                'llmexp-generate ckpt_path=outputs/runs/<date>/<time>/checkpoints/last.ckpt prompt="The for statement"',
                "llmexp-generate ckpt_path=... temperature=0 max_new_tokens=64",
                "llmexp-generate ckpt_path=... num_samples=3 top_p=0.9 seed=1",
            ),
        ),
        EntryPoint(
            "llmexp-serve",
            "serve",
            "llmexp.serving.server:serve",
            "Serve a checkpoint over HTTP with an OpenAI-compatible API (/v1/completions, /v1/chat/completions, "
            "streaming), /health and /metrics.",
            (
                "llmexp-serve ckpt_path=outputs/runs/<date>/<time>/checkpoints/last.ckpt",
                "llmexp-serve ckpt_path=... serve.port=8080 serve.max_batch_size=32",
                'curl localhost:8000/v1/completions -d \'{"prompt": "def add(", "max_tokens": 32}\'',
            ),
        ),
        EntryPoint(
            "llmexp-feedback",
            "feedback",
            "llmexp.serving.feedback_data:export_feedback",
            "Turn the feedback that llmexp-serve stored (ratings and preferences sent to /v1/feedback or the /arena "
            "page) into training data: chosen/rejected pairs for experiment=dpo, or well-rated answers for "
            "experiment=sft.",
            (
                "llmexp-feedback dataset=preference out=outputs/feedback/pairs.jsonl",
                "llmexp-feedback dataset=sft min_rating=5 out=outputs/feedback/sft.jsonl",
                "llmexp-train experiment=dpo init_from=... data.train_file=outputs/feedback/pairs.jsonl",
            ),
        ),
        EntryPoint(
            "llmexp-export",
            "export",
            "llmexp.cli.export:export",
            "Write a checkpoint as a transformers model directory (config.json, model.safetensors, tokenizer "
            "files, generation_config.json, the chat template of SFT models).",
            (
                "llmexp-export ckpt_path=outputs/runs/<date>/<time>/checkpoints/last.ckpt out=exported/my-model",
                "llmexp-export ckpt_path=outputs/sft/checkpoints/merged.ckpt out=exported/chat generation.top_p=0.9",
            ),
        ),
        EntryPoint(
            "llmexp-convert",
            "convert",
            "llmexp.artifacts.consolidate:convert_checkpoint",
            "Consolidate a sharded checkpoint folder (strategy=fsdp, fsdp2, deepspeed_*) into one file that "
            "generate, eval, serve and export read.",
            (
                "llmexp-convert ckpt_path=outputs/runs/<date>/<time>/checkpoints/last.ckpt",
                "llmexp-convert ckpt_path=... output_path=outputs/model.ckpt",
            ),
        ),
    )
}
