"""Elastic resume's plan: the accumulation that keeps a checkpoint's global batch with another process layout, and a
one-line refusal where none can."""

import logging

import pytest

from llmexp.errors import ConfigError
from llmexp.training.elastic import LAYOUT, keep_global_batch

TWO_BY_FOUR = {LAYOUT: {"world_size": 2, "batch_size": 4, "accumulate_grad_batches": 1}}


def test_one_process_accumulates_two_batches_to_keep_a_global_batch_of_eight(make_cfg, caplog):
    cfg = make_cfg("experiment=smoke", "trainer.devices=1", "data.batch_size=4", "trainer.val_check_interval=3")
    with caplog.at_level(logging.INFO, logger="llmexp.training.elastic"):
        keep_global_batch(cfg, TWO_BY_FOUR)
    assert cfg.trainer.accumulate_grad_batches == 2
    assert cfg.trainer.val_check_interval == 6  # it counts micro-batches: validation stays at the same steps
    assert "global batch of 8 samples is kept" in caplog.text


def test_the_layout_of_the_checkpoint_resumes_unchanged(make_cfg):
    cfg = make_cfg("experiment=smoke", "trainer.devices=2", "data.batch_size=4", "trainer.val_check_interval=3")
    keep_global_batch(cfg, TWO_BY_FOUR)
    assert (cfg.trainer.accumulate_grad_batches, cfg.trainer.val_check_interval) == (1, 3)


@pytest.mark.parametrize(
    "overrides",
    [
        ("trainer.devices=1", "data.batch_size=3"),  # 3 does not divide 8
        ("trainer.devices=1", "data.batch_size=4", "trainer.accumulate_grad_batches=3"),  # 12, not 8
    ],
)
def test_a_layout_that_cannot_keep_the_global_batch_is_refused_in_one_line(make_cfg, overrides):
    cfg = make_cfg("experiment=smoke", *overrides)
    with pytest.raises(ConfigError, match="global batch is 8 samples") as refused:
        keep_global_batch(cfg, TWO_BY_FOUR)
    assert "\n" not in str(refused.value) and "init_from" in str(refused.value)
