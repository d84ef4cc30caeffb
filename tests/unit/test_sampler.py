from llmexp.data.sampler import ResumableSampler


def test_same_seed_and_epoch_give_the_same_order():
    a, b = ResumableSampler(100, seed=3), ResumableSampler(100, seed=3)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b) and sorted(a) == list(range(100))


def test_ranks_get_disjoint_equal_shares():
    shares = [list(ResumableSampler(103, seed=1, rank=r, world_size=4)) for r in range(4)]
    assert all(len(s) == 25 for s in shares)
    assert len(set().union(*shares)) == 100


def test_resume_skips_exactly_what_was_consumed_in_that_epoch_only():
    full = ResumableSampler(50, seed=7)
    full.set_epoch(2)
    expected = list(full)
    resumed = ResumableSampler(50, seed=7)
    resumed.resume_from(epoch=2, consumed=20)
    resumed.set_epoch(2)
    assert list(resumed) == expected[20:]
    assert list(resumed) == expected  # the next pass over the same epoch starts at the beginning again


def test_unshuffled_order_is_sequential():
    assert list(ResumableSampler(6, seed=0, shuffle=False, rank=1, world_size=2)) == [1, 3, 5]


def _global_steps(samples: int, world: int, batch: int, accumulate: int) -> list[set[int]]:
    """The samples each optimizer step of one epoch trains on, over all ranks and accumulated micro-batches (a last
    step short of a full global batch included)."""
    shares = [
        list(ResumableSampler(samples, seed=5, rank=r, world_size=world, step_samples=batch * accumulate))
        for r in range(world)
    ]
    per_step = batch * accumulate
    return [
        set().union(*(share[s * per_step : (s + 1) * per_step] for share in shares))
        for s in range(-(-len(shares[0]) // per_step))
    ]


def test_layouts_with_the_same_global_batch_train_the_same_steps_on_the_same_samples():
    # 2 ranks x 4 and 1 rank x 4 x 2 accumulated: global batches of 8; an epoch of 101 samples is 12 full steps.
    two, one = _global_steps(101, world=2, batch=4, accumulate=1), _global_steps(101, world=1, batch=4, accumulate=2)
    assert len(two) == len(one) == 12 and two == one
    assert all(len(step) == 8 for step in one)
