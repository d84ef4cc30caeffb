"""Text generated at the end of a run, so a person can read what the model learned."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only

from llmexp.models.generation import SamplingConfig, generate

log = logging.getLogger(__name__)


class SampleGeneration(L.Callback):
    """At the end of fit, continue a few prompts with the shared generation loop and write them to a file."""

    def __init__(
        self,
        prompts: list[str],
        max_new_tokens: int = 64,
        temperature: float = 0.8,
        top_k: int | None = 50,
        top_p: float | None = None,
        filename: str = "samples.txt",
        seed: int = 0,
    ):
        self.prompts = list(prompts)
        self.sampling = SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p)
        self.filename, self.seed = filename, seed

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        tokenizer = getattr(trainer.datamodule, "tokenizer", None)
        if tokenizer is None or not self.prompts:
            return
        model = pl_module.model
        generator = torch.Generator(device=pl_module.device).manual_seed(self.seed)
        prompts = [tokenizer.encode(p) for p in self.prompts]
        outputs = generate(model, prompts, self.sampling, tokenizer.eos_id, generator=generator)
        texts = [prompt + tokenizer.decode(out) for prompt, out in zip(self.prompts, outputs, strict=True)]
        path = Path(trainer.default_root_dir) / self.filename
        sep = "\n" + "-" * 60 + "\n"
        path.write_text(sep.join(texts) + "\n", encoding="utf-8")
        log.info("samples written to %s", path)
        print(f"\nSamples after {trainer.global_step} steps:{sep}{sep.join(texts)}{sep}")
