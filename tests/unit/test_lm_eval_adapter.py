"""The lm-eval model class: its requests answered like lm-eval's own HF model would answer them."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from lm_eval.api.instance import Instance

from llmexp.evaluation.lm_eval_adapter import LLMExpLM
from llmexp.models.gpt import GPTConfig
from llmexp.tokenizer import Tokenizer

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture(scope="module")
def lm():
    tokenizer = Tokenizer.load(ASSETS / "tokenizer.json")
    torch.manual_seed(1)
    model = GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=1, n_head=2, n_embd=32, max_seq_len=64).build()
    return LLMExpLM(model=model.eval(), tokenizer=tokenizer)


def request(kind: str, args: tuple) -> Instance:
    return Instance(request_type=kind, doc={}, arguments=args, idx=0)


@torch.no_grad()
def test_rolling_loglikelihood_scores_every_token_after_the_end_of_text_prefix(lm):
    text = "def f(x): return x"
    ids = [lm.eot_token_id, *lm.tok_encode(text)]
    assert len(ids) <= 64  # one window: the reference is one forward pass
    logprobs = F.log_softmax(lm.model(torch.tensor([ids[:-1]]))[0].double(), dim=-1)
    reference = sum(float(logprobs[i, t]) for i, t in enumerate(ids[1:]))
    (total,) = lm.loglikelihood_rolling([request("loglikelihood_rolling", (text,))])
    assert total == pytest.approx(reference, abs=1e-4)


def test_loglikelihood_goes_through_lm_eval_request_encoding(lm):
    (ll, _), (ll_spaced, _) = lm.loglikelihood(
        [request("loglikelihood", ("Answer:", " yes")), request("loglikelihood", ("Answer: ", "yes"))]
    )
    assert ll == pytest.approx(ll_spaced)  # lm-eval moves the context's trailing space into the continuation


def test_generate_until_stops_at_the_stop_string(lm):
    (free,) = lm.generate_until([request("generate_until", ("The", {"max_gen_toks": 12}))])
    assert len(free) >= 5
    stop = free[3:5]
    (cut,) = lm.generate_until([request("generate_until", ("The", {"until": [stop], "max_gen_toks": 12}))])
    assert free.startswith(cut) and stop not in cut
