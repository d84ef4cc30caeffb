"""What to do next, printed at the end of a run: every command printed here works as printed (paths are absolute,
prompts quoted, taken from the run's own data; an SFT model is prompted through its chat template)."""

from __future__ import annotations

import shlex
from pathlib import Path

from llmexp.models.spec import FamilySpec


def next_steps(run_dir: Path, datamodule, family: FamilySpec, trains_language_model: bool) -> list[str]:
    lines = [f"Run folder: {run_dir}"]
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.is_dir():  # sharded (fsdp, fsdp2, deepspeed): one file first
        lines.append(f"Consolidate: llmexp-convert ckpt_path={last}")
    elif last.exists() and family.can_generate and trains_language_model:
        merged = last.with_name("merged.ckpt")  # a LoRA fine-tune: the adapters folded into the base
        usable = merged if merged.exists() else last
        chat = getattr(datamodule, "template", None) is not None  # instruction data: prompt as a user turn
        prompts = datamodule.sample_prompts(1, chat=chat) if hasattr(datamodule, "sample_prompts") else []
        prompt = shlex.quote(prompts[0] if prompts else "Hello")
        lines.append(f"Generate: llmexp-generate ckpt_path={usable} {'chat=true ' if chat else ''}prompt={prompt}")
    return lines
