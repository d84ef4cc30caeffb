import pytest

from llmexp.training.batch_size import BatchTrial, choose


def test_choose_takes_the_smallest_batch_near_the_best_throughput():
    trials = [
        BatchTrial(1, 100.0),
        BatchTrial(2, 190.0),
        BatchTrial(4, 300.0),
        BatchTrial(8, 310.0),
        BatchTrial(16, 312.0),
        BatchTrial(32, None),
    ]
    assert choose(trials, tolerance=0.05) == 4
    assert choose(trials, tolerance=0.0) == 16


def test_choose_needs_one_batch_that_ran():
    with pytest.raises(RuntimeError, match="no candidate"):
        choose([BatchTrial(1, None)], tolerance=0.05)
