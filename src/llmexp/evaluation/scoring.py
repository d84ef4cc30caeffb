"""Log-likelihood of continuations under a causal LM, tokenised and truncated exactly as lm-evaluation-harness does
(so multiple-choice accuracies agree with lm-eval's on the same model), and perplexity / bits per byte of text."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.text import Perplexity

from llmexp.evaluation import progress
from llmexp.tokenizer import Tokenizer


class LogLikelihoodScorer:
    """Sums of continuation-token log-probabilities for (context, continuation) pairs, batched."""

    def __init__(self, model: nn.Module, tokenizer: Tokenizer, batch_size: int = 16):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, max(1, batch_size)
        self.max_length: int = model.config.max_seq_len

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """lm-eval's split: trailing spaces of the context move to the continuation; the continuation's tokens are
        those of context+continuation after the context's; an empty context becomes the end-of-text token."""
        if context == "":
            ids = self.tokenizer.encode(continuation)
            return ([self.tokenizer.eos_id], ids) if ids[:1] != [self.tokenizer.eos_id] else (ids[:1], ids[1:])
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
        whole = self.tokenizer.encode(context + continuation)
        context_ids = self.tokenizer.encode(context)
        return context_ids, whole[len(context_ids) :]

    @torch.inference_mode()
    def loglikelihood_tokens(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """(sum of log p(continuation | context), whether greedy decoding would produce it) for each pair.

        Inputs longer than the model's context keep their last `max_length` tokens, as lm-eval does.
        """
        was_training = self.model.training
        self.model.eval()
        results: list[tuple[float, bool] | None] = [None] * len(pairs)
        order = sorted(range(len(pairs)), key=lambda i: -len(pairs[i][0]) - len(pairs[i][1]))
        progress.expect(len(order), "scores")
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            progress.advance(len(chunk))
            inputs = [(pairs[i][0] + pairs[i][1])[-(self.max_length + 1) :][:-1] for i in chunk]
            width = max(len(x) for x in inputs)
            ids = torch.zeros((len(chunk), width), dtype=torch.long, device=self.device)
            for row, x in enumerate(inputs):
                ids[row, : len(x)] = torch.tensor(x, dtype=torch.long)
            logprobs = F.log_softmax(self.model(ids).float(), dim=-1)
            for row, index in enumerate(chunk):
                end = len(inputs[row])
                # A continuation longer than the context window is scored on the tokens that fit.
                continuation = pairs[index][1][-end:]
                window = logprobs[row, end - len(continuation) : end]
                target = torch.tensor(continuation, dtype=torch.long, device=self.device)
                greedy = bool((window.argmax(dim=-1) == target).all())
                results[index] = (float(window.gather(1, target[:, None]).sum()), greedy)
        self.model.train(was_training)
        return results  # type: ignore[return-value]

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        return self.loglikelihood_tokens([self.encode_pair(c, x) for c, x in requests])


def _token_windows(tokens: list[int], length: int) -> Iterable[list[int]]:
    """Windows of `length + 1` tokens overlapping by one, so every token after the first is predicted once."""
    for start in range(0, max(1, len(tokens) - 1), length):
        window = tokens[start : start + length + 1]
        if len(window) >= 2:
            yield window


@torch.inference_mode()
def text_perplexity(
    model: nn.Module, tokenizer: Tokenizer, texts: Sequence[str], block_size: int | None = None, batch_size: int = 8
) -> dict[str, float]:
    """Perplexity, mean loss (nats per token) and bits per byte of held-out documents joined by end-of-text into one
    stream (windows cross document boundaries; the end-of-text predictions count), with the counts covered."""
    block_size = min(block_size or model.config.max_seq_len, model.config.max_seq_len)
    stream: list[int] = []
    for ids in tokenizer.encode_batch(list(texts)):
        stream.extend([*ids, tokenizer.eos_id])
    windows = list(_token_windows(stream, block_size))
    if not windows:
        raise ValueError("perplexity needs at least two tokens of text")
    device = next(model.parameters()).device
    token_bytes = torch.from_numpy(tokenizer.token_bytes()).to(device)
    ppl = Perplexity(ignore_index=-100, sync_on_compute=False).to(device)  # one process's documents: no all-gather
    nats = torch.zeros((), dtype=torch.float64, device=device)
    nbytes = torch.zeros((), dtype=torch.float64, device=device)
    ntokens = 0
    for start in range(0, len(windows), batch_size):
        chunk = windows[start : start + batch_size]
        width = max(len(w) for w in chunk) - 1
        ids = torch.zeros((len(chunk), width), dtype=torch.long, device=device)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long, device=device)
        for row, window in enumerate(chunk):
            ids[row, : len(window) - 1] = torch.tensor(window[:-1])
            labels[row, : len(window) - 1] = torch.tensor(window[1:])
        logits = model(ids).float()
        ppl.update(logits, labels)
        per_token = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="none")
        valid = labels.flatten() >= 0
        ntokens += int(valid.sum())
        counted_bytes = token_bytes[labels.flatten().clamp(min=0)] * valid
        nats += (per_token * (counted_bytes > 0)).sum().double()
        nbytes += counted_bytes.sum().double()
    perplexity = float(ppl.compute())
    return {
        "ppl": perplexity,
        "loss": math.log(perplexity),
        "bpb": float(nats / (math.log(2) * nbytes.clamp(min=1))),
        "documents": float(len(texts)),
        "tokens": float(ntokens),
        "bytes": float(nbytes),
    }
