"""Exact parity with `transformers` for every family, both directions, on randomly initialised tiny models."""

import pytest
import torch

from llmexp.models.generation import SamplingConfig, generate
from llmexp.models.hf import from_hf, to_hf

transformers = pytest.importorskip("transformers")

VOCAB = 96


def hf_tiny(kind: str):
    """A randomly initialised tiny HF model (no hub) with non-trivial norms and biases."""
    tf = transformers
    if kind == "gpt2":
        cfg = tf.GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=4, bos_token_id=0,
                            eos_token_id=0)  # fmt: skip
        model = tf.GPT2LMHeadModel(cfg)
    elif kind == "llama":
        cfg = tf.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                             bos_token_id=0, eos_token_id=0)  # fmt: skip
        model = tf.LlamaForCausalLM(cfg)
    elif kind == "bert":
        cfg = tf.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=48, max_position_embeddings=64)  # fmt: skip
        model = tf.BertForMaskedLM(cfg)
    else:
        cfg = tf.T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
                          eos_token_id=1, pad_token_id=0, decoder_start_token_id=0)  # fmt: skip
        model = tf.T5ForConditionalGeneration(cfg)
    with torch.no_grad():  # HF initialises norms to 1 and biases to 0; perturb them so a mix-up would show
        for name, param in model.named_parameters():
            if name.endswith("bias") or "norm" in name.lower():
                param.add_(0.1 * torch.randn_like(param))
    return model.eval()


def hf_logits(hf, kind, ids, mask=None):
    if kind == "t5":
        return hf(input_ids=ids, attention_mask=mask, decoder_input_ids=ids[:, :7]).logits
    return hf(input_ids=ids, attention_mask=mask).logits


def our_logits(model, kind, ids, mask=None):
    if kind == "t5":
        return model(ids, attention_mask=mask, decoder_input_ids=ids[:, :7])
    return model(ids, attention_mask=mask)


@pytest.fixture(params=["gpt2", "llama", "bert", "t5"])
def pair(request):
    torch.manual_seed(0)
    hf = hf_tiny(request.param)
    return request.param, hf, from_hf(hf)


def test_imported_logits_match(pair):
    kind, hf, ours = pair
    ids = torch.randint(2, VOCAB, (3, 20))
    with torch.no_grad():
        diff = (hf_logits(hf, kind, ids) - our_logits(ours, kind, ids)).abs().max()
    assert diff < 1e-4


def test_right_padded_logits_match(pair):
    kind, hf, ours = pair
    ids = torch.randint(2, VOCAB, (2, 16))
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    with torch.no_grad():
        theirs, mine = hf_logits(hf, kind, ids, mask), our_logits(ours, kind, ids, mask)
    real = mask.bool() if kind != "t5" else torch.ones(2, 7, dtype=torch.bool)
    assert (theirs - mine).abs()[real].max() < 1e-4


def test_exported_logits_match(pair):
    kind, _, _ = pair
    torch.manual_seed(1)
    ours = from_hf(hf_tiny(kind))  # a fresh model of ours, exported back to a new HF object
    with torch.no_grad():
        for param in ours.parameters():
            param.add_(0.01 * torch.randn_like(param))
    hf = to_hf(ours, eos_id=0 if kind != "t5" else 1)
    ids = torch.randint(2, VOCAB, (2, 12))
    with torch.no_grad():
        diff = (hf_logits(hf, kind, ids) - our_logits(ours, kind, ids)).abs().max()
    assert diff < 1e-4


@pytest.mark.parametrize("direction", ["import", "export"])
def test_greedy_32_tokens_identical(pair, direction):
    kind, hf, ours = pair
    if kind == "bert":
        pytest.skip("BERT is an encoder with a masked-LM head: it does not generate")
    if direction == "export":
        hf = to_hf(ours, eos_id=1)
    hf.generation_config.eos_token_id = None
    hf.generation_config.pad_token_id = 0
    ids = torch.randint(2, VOCAB, (1, 9))
    with torch.no_grad():
        theirs = hf.generate(ids, max_new_tokens=32, do_sample=False)
    theirs = theirs[0, 1:] if kind == "t5" else theirs[0, ids.shape[1] :]
    mine = generate(ours, [ids[0].tolist()], SamplingConfig(max_new_tokens=32, temperature=0, stop_at_eos=False), 1)
    assert mine[0] == theirs.tolist()
    assert len(mine[0]) == 32
