import pytest
import torch

from llmexp.models import config_from_dict
from llmexp.models.gpt import GPTConfig

VARIANTS = {
    "gpt2": {},
    "llama": {
        "pos_emb": "rope",
        "norm": "rmsnorm",
        "mlp": "swiglu",
        "bias": False,
        "n_kv_head": 1,
        "tie_embeddings": False,
    },
}


def tiny(**overrides) -> GPTConfig:
    return GPTConfig(**{"vocab_size": 97, "n_layer": 2, "n_head": 4, "n_embd": 32, "max_seq_len": 64, **overrides})


@pytest.fixture(params=sorted(VARIANTS))
def model(request):
    torch.manual_seed(0)
    return tiny(**VARIANTS[request.param]).build().eval()


def test_logits_shape(model):
    ids = torch.randint(0, 97, (3, 17))
    assert model(ids).shape == (3, 17, 97)


def test_future_tokens_never_change_past_logits(model):
    ids = torch.randint(0, 97, (2, 20))
    changed = ids.clone()
    changed[:, 12:] = torch.randint(0, 97, (2, 8))
    with torch.no_grad():
        a, b = model(ids), model(changed)
    torch.testing.assert_close(a[:, :12], b[:, :12])
    assert not torch.allclose(a[:, 12:], b[:, 12:])


def test_kv_cache_matches_full_forward(model):
    ids = torch.randint(0, 97, (2, 24))
    with torch.no_grad():
        full = model(ids)
        cache = model.new_cache(2)
        pieces = [model(ids[:, :10], cache=cache)] + [model(ids[:, t : t + 1], cache=cache) for t in range(10, 24)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)


def test_rows_of_different_lengths_step_together_in_one_cache(model):
    """Continuous batching: a 10-token row and a 4-token row (read apart) take their next tokens in one step, each
    at its own position, and a row dropped from the cache leaves the other unchanged."""
    a, b = torch.randint(0, 97, (1, 14)), torch.randint(0, 97, (1, 9))
    with torch.no_grad():
        cache, joining = model.new_cache(1, 16), model.new_cache(1, 16)
        model(a[:, :10], cache=cache)
        model(b[:, :4], cache=joining)
        cache.extend(joining)
        steps = [model(torch.cat([a[:, 10 + t : 11 + t], b[:, 4 + t : 5 + t]]), cache=cache) for t in range(4)]
        cache.keep([1])
        last = model(b[:, 8:9], cache=cache)
        full_a, full_b = model(a), model(b)
    torch.testing.assert_close(torch.cat([s[0:1] for s in steps], dim=1), full_a[:, 10:14], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat([s[1:2] for s in steps] + [last], dim=1), full_b[:, 4:9], atol=1e-5, rtol=1e-5)


def test_left_padding_does_not_leak(model):
    ids = torch.randint(1, 97, (1, 9))
    padded = torch.cat([torch.zeros(1, 4, dtype=torch.long), ids], dim=1)
    mask = torch.cat([torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 9, dtype=torch.long)], dim=1)
    with torch.no_grad():
        plain = model(ids)
        with_pad = model(padded, attention_mask=mask)[:, 4:]
    torch.testing.assert_close(with_pad, plain, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_parameter_count_formula_matches_the_module(variant):
    cfg = tiny(**VARIANTS[variant])
    model = cfg.build()
    assert cfg.num_params(non_embedding=False) == sum(p.numel() for p in model.parameters())


def test_embeddings_are_tied_by_default():
    model = tiny().build()
    assert model.lm_head.weight is model.wte.weight


def test_residual_projections_get_scaled_init():
    torch.manual_seed(0)
    model = GPTConfig(vocab_size=50, n_layer=8, n_head=4, n_embd=256, max_seq_len=16).build()
    proj_std = model.blocks[0].attn.proj.weight.std().item()
    qkv_std = model.blocks[0].attn.qkv.weight.std().item()
    assert qkv_std == pytest.approx(0.02, rel=0.05)
    assert proj_std == pytest.approx(0.02 / 4, rel=0.05)


def test_config_round_trips_through_a_dict():
    cfg = tiny(**VARIANTS["llama"])
    assert config_from_dict(cfg.to_dict()) == cfg


def test_invalid_shapes_are_rejected():
    with pytest.raises(ValueError, match="n_head"):
        tiny(n_head=5)
    with pytest.raises(ValueError, match="n_kv_head"):
        tiny(n_kv_head=3)
    with pytest.raises(ValueError, match="max_seq_len"):
        tiny().build()(torch.zeros(1, 65, dtype=torch.long))


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = tiny().build()
    checkpointed = tiny(gradient_checkpointing=True).build()
    checkpointed.load_state_dict(plain.state_dict())
    ids = torch.randint(0, 97, (2, 16))
    for m in (plain, checkpointed):
        m(ids).sum().backward()
    torch.testing.assert_close(plain.wte.weight.grad, checkpointed.wte.weight.grad)


@pytest.mark.parametrize("pos_emb", ["learned", "rope", "sinusoidal"])
def test_packed_rows_train_the_same_with_gradient_checkpointing(pos_emb):
    """segment_ids are a model input, so gradient checkpointing (and any wrapper of the model) sees them."""
    ids = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(3))
    segments = torch.tensor([[0] * 5 + [1] * 4 + [2] * 3, [0] * 8 + [-1] * 4])
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = tiny(pos_emb=pos_emb, gradient_checkpointing=checkpointing).build().train()
        logits = model(ids, segment_ids=segments)
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids.roll(-1, 1).flatten()).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1])
