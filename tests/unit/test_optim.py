import itertools

import pytest
import torch

from llmexp.models.gpt import GPTConfig
from llmexp.tasks.optim import weight_decay_groups
from llmexp.training.schedules import warmup_cosine, warmup_cosine_factor


def test_weight_decay_skips_norms_and_biases():
    model = GPTConfig(vocab_size=40, n_layer=1, n_head=2, n_embd=16, max_seq_len=8).build()
    decay, no_decay = weight_decay_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(names[id(p)].endswith("weight") and p.dim() == 2 for p in decay["params"])
    assert {names[id(p)].rsplit(".", 1)[-1] for p in no_decay["params"]} == {"weight", "bias"}
    assert all(p.dim() == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_warmup_then_cosine_to_the_floor():
    assert warmup_cosine_factor(0, 10, 110, 0.1) == pytest.approx(0.1)
    assert warmup_cosine_factor(9, 10, 110, 0.1) == pytest.approx(1.0)
    assert warmup_cosine_factor(60, 10, 110, 0.1) == pytest.approx(0.55)
    assert warmup_cosine_factor(110, 10, 110, 0.1) == pytest.approx(0.1)
    assert warmup_cosine_factor(500, 10, 110, 0.1) == pytest.approx(0.1)


def test_schedule_drives_the_optimizer():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = warmup_cosine(optimizer, total_steps=20, warmup_steps=4, min_lr_ratio=0.0)
    lrs = []
    for _ in range(20):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4] == pytest.approx(1.0) and lrs[-1] < 0.05
    assert all(a >= b for a, b in itertools.pairwise(lrs[4:]))
