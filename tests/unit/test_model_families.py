"""Behaviour every family shares: padding never leaks, KV cache == no cache, batched == one by one, exact counts."""

import pytest
import torch

from llmexp.models import BertConfig, GPTConfig, T5Config, config_from_dict, family_of
from llmexp.models.generation import DecodeRow, RunningBatch, SamplingConfig, cut_at_stop, generate

V = 61
CONFIGS = {
    "gpt2": GPTConfig(vocab_size=V, n_layer=2, n_head=4, n_embd=32, max_seq_len=64),
    "llama": GPTConfig(
        vocab_size=V,
        n_layer=2,
        n_head=4,
        n_kv_head=2,
        n_embd=32,
        max_seq_len=64,
        pos_emb="rope",
        norm="rmsnorm",
        mlp="swiglu",
        bias=False,
        tie_embeddings=False,
    ),
    "sinusoidal": GPTConfig(vocab_size=V, n_layer=2, n_head=2, n_embd=32, max_seq_len=64, pos_emb="sinusoidal"),
    "bert": BertConfig(vocab_size=V, n_layer=2, n_head=4, n_embd=32, max_seq_len=64, dropout=0.0),
    "t5": T5Config(vocab_size=V, n_layer=2, n_head=4, head_dim=8, n_embd=32, intermediate_size=48, dropout=0.0),
    "t5_geglu": T5Config(
        vocab_size=V,
        n_layer=1,
        n_decoder_layer=2,
        n_head=2,
        head_dim=8,
        n_embd=32,
        intermediate_size=48,
        mlp="geglu",
        dropout=0.0,
    ),
}
GENERATORS = ["llama", "sinusoidal", "t5"]  # GPT-2 style: tests/unit/test_generation.py


def build(name: str):
    torch.manual_seed(0)
    return CONFIGS[name].build().eval()


def run(model, ids, mask=None):
    if family_of(model).encoder_decoder:
        return model(ids, attention_mask=mask, decoder_input_ids=torch.tensor([[0, 5, 9, 2]]).expand(len(ids), -1))
    return model(ids, attention_mask=mask)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_padding_never_leaks(name, side):
    """Real-token outputs do not change with padding, whatever the padding holds."""
    model = build(name)
    ids = torch.randint(1, V, (1, 9))
    pad = 5
    outputs = []
    for fill in (0, 17):
        filler = torch.full((1, pad), fill)
        padded = torch.cat([filler, ids], 1) if side == "left" else torch.cat([ids, filler], 1)
        mask = torch.ones_like(padded)
        (mask[:, :pad] if side == "left" else mask[:, -pad:]).zero_()
        with torch.no_grad():
            out = run(model, padded, mask)
        decoder_side = family_of(model).encoder_decoder
        outputs.append(out if decoder_side else (out[:, pad:] if side == "left" else out[:, :-pad]))
    with torch.no_grad():
        plain = run(model, ids)
    for out in outputs:
        torch.testing.assert_close(out, plain, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", GENERATORS)
def test_kv_cache_generation_equals_no_cache(name):
    model = build(name)
    cfg = SamplingConfig(max_new_tokens=16, temperature=0, stop_at_eos=False)
    prompts = [[3, 4, 5], [7, 8, 9, 10, 11, 12, 13]]
    assert generate(model, prompts, cfg, eos_id=1) == generate(model, prompts, cfg, eos_id=1, use_cache=False)


@pytest.mark.parametrize("name", GENERATORS)
def test_batched_left_padded_generation_equals_one_by_one(name):
    model = build(name)
    cfg = SamplingConfig(max_new_tokens=12, temperature=0, stop_at_eos=False)
    prompts = [[3], [7, 8, 9, 10, 11, 12], [20, 21]]
    batched = generate(model, prompts, cfg, eos_id=1)
    assert batched == [generate(model, [p], cfg, eos_id=1)[0] for p in prompts]


@pytest.mark.parametrize("name", ["gpt2", *GENERATORS])
def test_rows_join_a_running_batch_and_leave_it_decoding_as_they_would_alone(name):
    """Continuous batching: rows that join after four steps (one of them left-padded) and a row that ends early
    give the tokens each gives alone; a row that ends leaves the batch at once."""
    model = build(name)
    greedy = SamplingConfig(max_new_tokens=10, temperature=0, stop_at_eos=False)
    short = SamplingConfig(max_new_tokens=3, temperature=0, stop_at_eos=False)
    rows = [DecodeRow([3, 4, 5, 6, 7], greedy), DecodeRow([9], short), DecodeRow([11, 12, 13], greedy)]
    batch = RunningBatch(model, eos_id=1)
    results = batch.join(rows[:1])
    for _ in range(4):
        batch.step()
    results += batch.join(rows[1:])
    for _ in range(3):
        batch.step()
    assert len(batch) == 2 and results[1].finish_reason == "length"  # the short row has left
    while batch.live:
        batch.step()
    alone = [generate(model, [row.prompt_ids], row.sampling, eos_id=1)[0] for row in rows]
    assert [result.tokens for result in results] == alone


@pytest.mark.parametrize("name", ["gpt2", *GENERATORS])
def test_a_row_that_joins_where_rows_left_decodes_as_it_would_alone(name):
    """Rows that leave free their places in the cache (only a row moved from the end is copied); a row that joins
    into a freed place with a shorter prompt than the one there before reads none of its keys."""
    model = build(name)

    def limit(n: int) -> SamplingConfig:
        return SamplingConfig(max_new_tokens=n, temperature=0, stop_at_eos=False)

    rows = [DecodeRow([3, 4, 5, 6, 7, 8, 9], limit(2)), DecodeRow([11, 12], limit(12)),
            DecodeRow([13, 14, 15, 16, 17, 18], limit(2)), DecodeRow([19], limit(6))]  # fmt: skip
    batch = RunningBatch(model, eos_id=1)
    results = batch.join(rows[:3])
    for _ in range(3):
        batch.step()
    assert len(batch) == 1  # the two short rows have left; the long one moved to the front
    results += batch.join(rows[3:])
    while batch.live:
        batch.step()
    alone = [generate(model, [row.prompt_ids], row.sampling, eos_id=1)[0] for row in rows]
    assert [result.tokens for result in results] == alone


@pytest.mark.parametrize("name", ["llama", "t5"])
def test_stop_sequences_end_a_row_and_are_left_out(name):
    model = build(name)
    cfg = SamplingConfig(max_new_tokens=12, temperature=0, stop_at_eos=False)
    free = generate(model, [[3, 4, 5]], cfg, eos_id=1)[0]
    stop = free[3:5]
    first = next(i for i in range(len(free) - 1) if free[i : i + 2] == stop)
    stopped = generate(model, [[3, 4, 5]], cfg, eos_id=1, stop_sequences=[stop])[0]
    assert stopped == free[:first]


def test_stop_strings_end_a_row_and_cut_the_text():
    model = build("gpt2")
    cfg = SamplingConfig(max_new_tokens=12, temperature=0, stop_at_eos=False)
    decode = " ".join(f"t{i}" for i in range(V)).split()
    text = lambda ids: "".join(decode[i] for i in ids)  # noqa: E731
    free = generate(model, [[3, 4, 5]], cfg, eos_id=1)[0]
    stop = decode[free[4]]
    stopped = generate(model, [[3, 4, 5]], cfg, eos_id=1, stop_strings=[stop], decode_text=text)[0]
    assert len(stopped) <= 5 and stop in text(stopped)
    assert cut_at_stop(text(stopped), [stop]) == text(stopped)[: text(stopped).index(stop)]


def test_bert_refuses_to_generate():
    with pytest.raises(ValueError, match="does not generate"):
        generate(build("bert"), [[1, 2]], SamplingConfig(), eos_id=1)


@pytest.mark.parametrize("name", ["bert", "t5", "t5_geglu"])
def test_parameter_count_formula_matches_the_module(name):
    cfg = CONFIGS[name]
    model = cfg.build()
    total = sum(p.numel() for p in model.parameters())
    lookups = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding))
    assert cfg.num_params(non_embedding=False) == total
    assert cfg.num_params(non_embedding=True) == total - lookups
    assert cfg.flops_per_token(64) > 6 * cfg.num_params()


@pytest.mark.parametrize("name", ["bert", "t5"])
def test_gradient_checkpointing_gives_the_same_gradients(name):
    plain = build(name).train()
    cfg = config_from_dict({**CONFIGS[name].to_dict(), "gradient_checkpointing": True})
    checkpointed = cfg.build().train()
    checkpointed.load_state_dict(plain.state_dict())
    ids = torch.randint(1, V, (2, 12))
    for model in (plain, checkpointed):
        run(model, ids).sum().backward()
    for a, b in zip(plain.parameters(), checkpointed.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_round_trips_through_a_dict(name):
    assert config_from_dict(CONFIGS[name].to_dict()) == CONFIGS[name]
