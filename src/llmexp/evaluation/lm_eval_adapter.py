"""llmexp checkpoints as an lm-evaluation-harness model: `lm_eval` runs any of its tasks on our models.

    lm_eval --model llmexp --model_args ckpt_path=outputs/<run>/checkpoints/last.ckpt --tasks arc_easy
    lm_eval.simple_evaluate(model="llmexp", model_args="ckpt_path=outputs/<run>/checkpoints/last.ckpt", tasks=[...])

The name "llmexp" reaches lm-eval's registry through the `lm_eval.models` entry point (lm_eval_plugin), or by
importing this module.

Scoring goes through the same LogLikelihoodScorer as llmexp-eval; lm-eval does the prompting, request building and
metric aggregation, which is what makes its numbers a check on ours.
"""

from __future__ import annotations

from typing import Any

# lm-eval registers its own models lazily, and only while its registry is empty: import them before adding ours,
# or `model="hf"` is unknown to lm-eval once this module is imported.
import lm_eval.models  # noqa: F401
import torch
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from torch import nn

from llmexp.evaluation.generation_eval import cut_at_stops, generate_completions
from llmexp.evaluation.perplexity import document_loglikelihoods
from llmexp.evaluation.scoring import LogLikelihoodScorer
from llmexp.models.generation import SamplingConfig
from llmexp.tokenizer import Tokenizer


@register_model("llmexp")
class LLMExpLM(TemplateLM):
    """lm-eval's LM interface over an llmexp model: loglikelihood, rolling loglikelihood and generate_until."""

    def __init__(
        self,
        ckpt_path: str | None = None,
        model: nn.Module | None = None,
        tokenizer: Tokenizer | None = None,
        batch_size: int | str = 16,
        device: str = "cpu",
        **_: Any,
    ):
        super().__init__()
        if model is None:
            if ckpt_path is None:
                raise ValueError("LLMExpLM needs ckpt_path=... or a model and tokenizer")
            from llmexp.artifacts.inference import load_for_inference

            model, tokenizer, _meta = load_for_inference(ckpt_path, device)
        if tokenizer is None:
            raise ValueError("LLMExpLM: a model given directly needs its tokenizer too")
        self.model, self.llmexp_tokenizer = model.eval(), tokenizer
        self.scorer = LogLikelihoodScorer(model, tokenizer, int(batch_size) if str(batch_size).isdigit() else 16)

    @property
    def eot_token_id(self) -> int:
        return self.llmexp_tokenizer.eos_id

    @property
    def max_length(self) -> int:
        return self.scorer.max_length

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        return self.llmexp_tokenizer.encode(string)

    def tok_decode(self, tokens: list[int], **kwargs: Any) -> str:
        return self.llmexp_tokenizer.decode(tokens)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs: Any) -> list[tuple[float, bool]]:
        results = self.scorer.loglikelihood_tokens([(ctx, cont) for _, ctx, cont in requests])
        for (key, _, _), result in zip(requests, results, strict=True):
            self.cache_hook.add_partial("loglikelihood", key, result)
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """Total log-likelihood of each text, in lm-eval's disjoint rolling windows (llmexp-eval's document mode)."""
        return [ll for ll, _ in document_loglikelihoods(self.scorer, [req.args[0] for req in requests])]

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        outputs = []
        for context, gen_kwargs in [req.args for req in requests]:
            kwargs = dict(gen_kwargs)
            until = kwargs.get("until") or []  # generation itself stops at the end-of-text token
            until = [s for s in ([until] if isinstance(until, str) else until) if s]
            temperature = float(kwargs.get("temperature", 0.0)) if kwargs.get("do_sample") else 0.0
            sampling = SamplingConfig(max_new_tokens=int(kwargs.get("max_gen_toks", 256)), temperature=temperature)
            with torch.inference_mode():
                (text,) = generate_completions(self.model, self.llmexp_tokenizer, [context], sampling)
            outputs.append(cut_at_stops(text, until))
        return outputs
