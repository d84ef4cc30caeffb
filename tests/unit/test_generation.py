import pytest
import torch

from llmexp.models.generation import DecodeRow, SamplingConfig, apply_repetition_penalty, choose_next, decode, generate
from llmexp.models.gpt import GPTConfig


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPTConfig(vocab_size=50, n_layer=2, n_head=2, n_embd=32, max_seq_len=64).build().eval()


def test_top_k_keeps_only_the_k_best():
    logits = torch.tensor([[0.0, 5.0, 4.0, -1.0, 3.0]])
    cfg = SamplingConfig(temperature=1.0, top_k=2)
    drawn = {int(choose_next(logits, cfg, torch.Generator().manual_seed(s))) for s in range(200)}
    assert drawn == {1, 2}


def test_top_p_keeps_the_smallest_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    cfg = SamplingConfig(temperature=1.0, top_p=0.7)
    drawn = {int(choose_next(probs.log(), cfg, torch.Generator().manual_seed(s))) for s in range(300)}
    assert drawn == {0, 1}


def test_temperature_zero_is_greedy():
    logits = torch.tensor([[0.1, 0.2, 3.0], [2.0, 0.0, 0.0]])
    assert choose_next(logits, SamplingConfig(temperature=0)).tolist() == [2, 0]


def test_repetition_penalty_lowers_seen_tokens():
    logits = torch.tensor([[2.0, -2.0, 2.0]])
    seen = torch.tensor([[True, True, False]])
    assert apply_repetition_penalty(logits, seen, 2.0).tolist() == [[1.0, -4.0, 2.0]]


def test_cached_and_uncached_generation_agree(model):
    cfg = SamplingConfig(max_new_tokens=20, temperature=0, stop_at_eos=False)
    prompts = [[3, 4, 5], [7, 8, 9, 10, 11, 12]]
    assert generate(model, prompts, cfg, eos_id=0) == generate(model, prompts, cfg, eos_id=0, use_cache=False)


def test_batched_equals_one_by_one(model):
    cfg = SamplingConfig(max_new_tokens=12, temperature=0, stop_at_eos=False)
    prompts = [[3], [7, 8, 9, 10, 11, 12], [20, 21]]
    batched = generate(model, prompts, cfg, eos_id=0)
    assert batched == [generate(model, [p], cfg, eos_id=0)[0] for p in prompts]


def test_generation_stops_at_eos(model):
    greedy = SamplingConfig(max_new_tokens=10, temperature=0, stop_at_eos=False)
    first = generate(model, [[1, 2, 3]], greedy, eos_id=0)[0][0]
    stopped = generate(model, [[1, 2, 3]], SamplingConfig(max_new_tokens=10, temperature=0), eos_id=first)
    assert stopped == [[]]


def test_long_prompts_are_cut_to_fit_the_context(model):
    out = generate(
        model, [list(range(1, 50)) * 3], SamplingConfig(max_new_tokens=8, temperature=0, stop_at_eos=False), 0
    )
    assert len(out[0]) == 8


def test_bad_sampling_settings_are_rejected():
    for bad in ({"temperature": -1}, {"top_k": 0}, {"top_p": 1.5}, {"max_new_tokens": 0}):
        with pytest.raises(ValueError):
            SamplingConfig(**bad)


def _alone_and_together(model, rows: list[tuple[list[int], SamplingConfig, int]]) -> tuple[list, list]:
    def decoded(selection):
        batch = [DecodeRow(p, s, torch.Generator().manual_seed(seed)) for p, s, seed in selection]
        return [r.tokens for r in decode(model, batch, eos_id=0)]

    return [decoded([row])[0] for row in rows], decoded(rows)


def test_a_row_with_a_vanishing_temperature_never_poisons_its_batch(model):
    rows = [
        ([3, 4, 5], SamplingConfig(max_new_tokens=8, temperature=1.0, stop_at_eos=False), 1),
        ([3, 4, 5], SamplingConfig(max_new_tokens=8, temperature=1e-300, stop_at_eos=False), 2),
        ([7, 8], SamplingConfig(max_new_tokens=8, temperature=0.7, top_p=0.9, stop_at_eos=False), 3),
        ([9], SamplingConfig(max_new_tokens=8, temperature=1e-45, top_k=5, stop_at_eos=False), 4),
    ]
    alone, together = _alone_and_together(model, rows)
    assert together == alone
    greedy = SamplingConfig(max_new_tokens=8, temperature=0, stop_at_eos=False)
    assert [together[1], together[3]] == generate(model, [[3, 4, 5], [9]], greedy, eos_id=0)  # the limit as T -> 0


def test_a_row_of_non_finite_logits_takes_its_best_token_and_leaves_the_others_alone():
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    logits[1] = float("nan")
    logits[1, 17] = 4.0
    cfg = SamplingConfig(temperature=0.8)
    chosen = choose_next(logits, cfg, torch.Generator().manual_seed(5))
    others = choose_next(logits[[0, 2]], cfg, torch.Generator().manual_seed(5))
    assert chosen[1] == 17
    assert chosen[[0, 2]].tolist() == others.tolist()
