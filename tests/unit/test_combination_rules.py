"""The rules that refuse an impossible combination in one line, checked on composed configs (no training)."""

from __future__ import annotations

import pytest

from llmexp.errors import ConfigError
from llmexp.training.combinations import check_combination, model_family

REFUSED = [
    (("model=bert_tiny",), "task=causal_lm does not train model family 'bert' (model=bert_tiny); it trains with"),
    (("experiment=pretrain_bert", "model=gpt_tiny"), "task=masked_lm does not train model family 'gpt'"),
    (("model=bert_tiny", "task=masked_lm"), "task=masked_lm trains on masked_lm batches, but data=pydocs"),
    (("model=t5_tiny", "task=seq2seq"), "task=seq2seq trains on span_corruption batches"),
    (("finetune=lora",), "finetune=lora has no effect on task=causal_lm"),
    (("experiment=pretrain_bert", "eval=suite"), "eval=suite scores text with next-token log-likelihoods"),
    (("experiment=pretrain_t5", "callbacks=eval"), "callbacks.periodic_eval scores text"),
    (("experiment=finetune_classification", "data.train_file=x.jsonl", "eval=suite"), "which task=classification"),
]


@pytest.mark.parametrize(("overrides", "expected"), REFUSED, ids=[" ".join(o) for o, _ in REFUSED])
def test_an_impossible_combination_is_refused_in_one_line(make_cfg, overrides, expected):
    cfg = make_cfg(*overrides)
    with pytest.raises(ConfigError) as info:
        check_combination(cfg, model_family(cfg))
    assert expected in str(info.value) and "\n" not in str(info.value)


ALLOWED = [
    ("experiment=smoke",),
    ("experiment=pretrain_bert",),
    ("experiment=pretrain_t5",),
    ("experiment=sft", "data.train_file=x.json", "finetune=lora"),
    ("experiment=finetune_classification", "data.train_file=x.jsonl", "model=t5_tiny", "finetune=freeze"),
    ("experiment=continued_pretraining", "data.corpus.paths=[x.txt]", "finetune=lora", "callbacks=eval"),
]


@pytest.mark.parametrize("overrides", ALLOWED, ids=[" ".join(o) for o in ALLOWED])
def test_a_possible_combination_passes(make_cfg, overrides):
    cfg = make_cfg(*overrides)
    check_combination(cfg, model_family(cfg))
