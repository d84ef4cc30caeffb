"""Masked-LM and span-corruption batches: their statistics on a large sample, and their exact structure."""

import pytest
import torch
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models

from llmexp.data.collators import IGNORE, MaskedLMCollator, SpanCorruptionCollator, span_noise_mask
from llmexp.errors import ConfigError
from llmexp.tokenizer import EOS_TOKEN, Tokenizer

SPECIALS = ["<pad>", EOS_TOKEN, "<mask>"] + [f"<extra_id_{i}>" for i in range(8)]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    """A word-level vocabulary of 200 plain tokens after the special ones (ids 0..10)."""
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    vocab.update({f"w{i}": len(SPECIALS) + i for i in range(200)})
    backend = HFTokenizer(models.WordLevel(vocab, unk_token="w0"))
    backend.add_special_tokens(SPECIALS)
    return Tokenizer(backend)


def test_mlm_masks_15_percent_with_80_10_10(tokenizer):
    collator = MaskedLMCollator(tokenizer)
    ids = torch.randint(len(SPECIALS), tokenizer.vocab_size, (400, 256))
    inputs, labels = collator.mask(ids, torch.Generator().manual_seed(0))
    picked = labels != IGNORE
    assert picked.float().mean().item() == pytest.approx(0.15, abs=0.005)
    assert torch.equal(labels[picked], ids[picked])  # the label is the original token
    n = picked.sum().item()
    as_mask = (inputs[picked] == collator.mask_id).sum().item() / n
    kept = (inputs[picked] == ids[picked]).sum().item() / n
    assert as_mask == pytest.approx(0.8, abs=0.01)
    # kept: the 10% left alone plus random draws that happen to hit the same token (1 in ~211)
    assert kept == pytest.approx(0.1 + 0.1 / tokenizer.vocab_size, abs=0.01)
    assert 1 - as_mask - kept == pytest.approx(0.1, abs=0.01)
    assert torch.equal(inputs[~picked], ids[~picked])  # tokens not picked are untouched


def test_mlm_never_picks_special_tokens(tokenizer):
    collator = MaskedLMCollator(tokenizer, mask_prob=0.9)
    ids = torch.full((50, 64), tokenizer.eos_id)
    ids[:, ::2] = 50
    _, labels = collator.mask(ids, torch.Generator().manual_seed(1))
    assert (labels[:, 1::2] == IGNORE).all()
    assert (labels[:, ::2] != IGNORE).float().mean() > 0.8


def test_span_noise_density_and_mean_span_length():
    generator = torch.Generator().manual_seed(0)
    masks = torch.stack([span_noise_mask(512, 0.15, 3.0, generator) for _ in range(100)])
    assert masks.float().mean().item() == pytest.approx(0.15, abs=0.002)
    starts = masks[:, 1:] & ~masks[:, :-1]
    spans = starts.sum() + masks[:, 0].sum()
    assert (masks.sum() / spans).item() == pytest.approx(3.0, rel=0.05)
    assert not masks[:, 0].any()  # T5 starts with a non-noise span


def test_span_corruption_input_and_target_rebuild_the_text(tokenizer):
    collator = SpanCorruptionCollator(tokenizer, noise_density=0.15, mean_span_length=3.0)
    ids = torch.arange(20, 20 + 60)
    inputs, targets = collator.corrupt(ids, torch.Generator().manual_seed(3))
    assert inputs[-1] == targets[-1] == tokenizer.eos_id
    sentinels = [t for t in inputs if t in collator.sentinels]
    assert sentinels == collator.sentinels[: len(sentinels)] and len(sentinels) == 3  # round(9 / 3)
    pieces = {}
    current = None
    for token in targets[:-1]:
        if token in collator.sentinels:
            current = token
            pieces[current] = []
        else:
            pieces[current].append(token)
    rebuilt = [tok for t in inputs[:-1] for tok in (pieces.get(t, [t]))]
    assert rebuilt == ids.tolist()
    assert len(targets) - 1 - len(sentinels) == round(60 * 0.15)


def test_span_corruption_batch_padding_and_decoder_inputs(tokenizer):
    collator = SpanCorruptionCollator(tokenizer)
    batch = collator([{"input_ids": torch.arange(20, 60)}, {"input_ids": torch.arange(20, 80)}])
    assert batch["attention_mask"][0].sum() < batch["attention_mask"][1].sum()
    assert (batch["input_ids"][batch["attention_mask"] == 0] == collator.pad_id).all()
    labels, dec = batch["labels"], batch["decoder_input_ids"]
    assert (dec[:, 0] == collator.pad_id).all()
    real = labels[:, :-1] != IGNORE
    assert torch.equal(dec[:, 1:][real], labels[:, :-1][real])


def test_span_corruption_refuses_more_spans_than_sentinels(tokenizer):
    collator = SpanCorruptionCollator(tokenizer, noise_density=0.5, mean_span_length=1.0)
    with pytest.raises(ConfigError, match="sentinels"):
        collator.corrupt(torch.arange(20, 120))


def test_collators_name_a_missing_token(tokenizer):
    with pytest.raises(ConfigError, match=r"data\.collator\.mask_token='<MASK>'"):
        MaskedLMCollator(tokenizer, mask_token="<MASK>")
