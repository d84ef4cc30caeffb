"""Text generated at the end of a run, so a person can read what the model learned."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch

from llmexp.models.generation import SamplingConfig, generate
from llmexp.models.spec import family_of
from llmexp.tasks.full_weights import full_language_model

log = logging.getLogger(__name__)


class SampleGeneration(L.Callback):
    """At the end of fit, continue a few prompts with the shared generation loop and write them to a file. Without
    `prompts`, the first words of `count` validation texts (SFT: their chat prompts), so samples read like the data.

    Sharded models are gathered first (every rank takes part; rank 0 generates). A task without a generating
    language model (a classifier, a BERT) has nothing to sample: the callback says so and does nothing.
    """

    def __init__(
        self,
        prompts: list[str] | None = None,
        count: int = 3,
        max_new_tokens: int = 64,
        temperature: float = 0.8,
        top_k: int | None = 50,
        top_p: float | None = None,
        filename: str = "samples.txt",
        seed: int = 0,
    ):
        self.prompts, self.count = list(prompts) if prompts else None, count
        self.sampling = SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p)
        self.filename, self.seed = filename, seed

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        tokenizer = getattr(trainer.datamodule, "tokenizer", None)
        language_model = pl_module.language_model() if hasattr(pl_module, "language_model") else None
        if tokenizer is None or language_model is None:
            return
        if not family_of(language_model).can_generate:
            if trainer.is_global_zero:
                log.info("samples: skipped, model family %r does not generate text", family_of(language_model).name)
            return
        from_data = getattr(trainer.datamodule, "sample_prompts", None)
        texts = self.prompts or (from_data(self.count) if from_data else [])
        with full_language_model(trainer, pl_module) as model:
            if model is not None and texts:
                self._write(trainer, model, tokenizer, texts)

    def _write(self, trainer: L.Trainer, model: torch.nn.Module, tokenizer, texts: list[str]) -> None:
        device = next(model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(self.seed)
        prompts = [tokenizer.encode(p) or [tokenizer.eos_id] for p in texts]
        outputs = generate(model, prompts, self.sampling, tokenizer.eos_id, generator=generator)
        texts = [prompt + tokenizer.decode(out) for prompt, out in zip(texts, outputs, strict=True)]
        path = Path(trainer.default_root_dir) / self.filename
        sep = "\n" + "-" * 60 + "\n"
        path.write_text(sep.join(texts) + "\n", encoding="utf-8")
        log.info("samples written to %s", path)
        print(f"\nSamples after {trainer.global_step} steps:{sep}{sep.join(texts)}{sep}")
