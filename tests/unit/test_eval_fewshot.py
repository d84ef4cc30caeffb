"""Few-shot draws equal lm-evaluation-harness's samplers, item for item, and prompts are written as its tasks write
them."""

import pytest

from llmexp.errors import DataError
from llmexp.evaluation.benchmarks import GenExample, MCExample
from llmexp.evaluation.fewshot import Demonstrations, FewshotSampler, context, contexts

samplers = pytest.importorskip("lm_eval.api.samplers")


def docs(n: int, prefix: str = "d") -> list[dict]:
    return [{"id": f"{prefix}{i}", "text": f"item {i}"} for i in range(n)]


@pytest.mark.parametrize(("pool_size", "k"), [(3, 1), (7, 2), (40, 2), (40, 5), (300, 8)])
def test_draws_equal_lm_eval_default_sampler_from_another_split(pool_size, k):
    pool, scored = docs(pool_size, "train"), docs(25, "test")
    ours = FewshotSampler(pool, seed=1234, exclude_self=False)
    theirs = samplers.ContextSampler(pool, rnd=1234)
    for row in scored:  # one generator for the whole task, advanced item by item
        assert [pool[i] for i in ours.draw(k, row)] == list(theirs.sample(k))


@pytest.mark.parametrize(("pool_size", "k"), [(3, 2), (7, 2), (40, 2), (300, 6)])
def test_draws_equal_lm_eval_when_the_item_is_left_out_of_its_own_draw(pool_size, k):
    pool = docs(pool_size)
    ours = FewshotSampler(pool, seed=7, exclude_self=True)
    theirs = samplers.ContextSampler(pool, rnd=7)
    for row in pool:
        drawn = [pool[i] for i in ours.draw(k, row)]
        assert drawn == list(theirs.sample(k, eval_doc=row)) and row not in drawn


def test_a_pool_with_copies_of_the_item_draws_again_like_lm_eval():
    pool = [{"x": 1}, {"x": 1}, {"x": 1}, {"x": 2}, {"x": 3}, {"x": 4}]
    ours, theirs = FewshotSampler(pool, seed=3, exclude_self=True), samplers.ContextSampler(pool, rnd=3)
    for _ in range(30):
        assert [pool[i] for i in ours.draw(2, {"x": 1})] == list(theirs.sample(2, eval_doc={"x": 1}))


def test_first_n_takes_the_first_k_and_groups_draw_on_their_own():
    rows = [{"subject": s, "q": i} for i, s in enumerate("aabbba")]
    examples = [MCExample(f"Q{i}", ["x", "y"], 0) for i in range(6)]
    shots = Demonstrations(rows, examples, seed=1, exclude_self=False, first_n=True, group_field="subject")
    assert [e.query for e in shots.for_item(2, {"subject": "b"})] == ["Q2", "Q3"]
    assert [e.query for e in shots.for_item(3, {"subject": "a"})] == ["Q0", "Q1", "Q5"]
    with pytest.raises(DataError, match="no examples with subject='c'"):
        shots.for_item(1, {"subject": "c"})


def test_a_pool_too_small_for_k_is_one_clear_error():
    with pytest.raises(DataError, match="3 examples needed per item, the few-shot pool has 2"):
        FewshotSampler(docs(2), seed=0, exclude_self=True).draw(2, {"id": "x"})


def test_prompts_are_description_solved_examples_and_the_question():
    target = MCExample("Target:", ["x", "y"], 0, description="About things.\n\n")
    shots = [MCExample("Q1:", ["a", "b"], 1), MCExample("Q2:", ["c", "d"], 0)]
    assert context(target, shots) == "About things.\n\nQ1: b\n\nQ2: c\n\nTarget:"
    worked = GenExample("Question: 2+2?\nAnswer:", ["4"], demonstration="2+2=4\n#### 4")
    assert context(GenExample("Question: 1+1?\nAnswer:", ["2"]), [worked]) == (
        "Question: 2+2?\nAnswer: 2+2=4\n#### 4\n\nQuestion: 1+1?\nAnswer:"
    )


def test_contexts_draw_in_scoring_order_from_one_seed():
    rows = docs(30)
    examples = [MCExample(f"Q{i}:", ["a", "b"], 0) for i in range(30)]
    first = contexts(examples, rows, Demonstrations(rows, examples, 5, exclude_self=True), 2)
    again = contexts(examples, rows, Demonstrations(rows, examples, 5, exclude_self=True), 2)
    other_seed = contexts(examples, rows, Demonstrations(rows, examples, 6, exclude_self=True), 2)
    assert first == again and first != other_seed
    assert all(prompt.count(f"Q{i}:") == 1 for i, prompt in enumerate(first))  # never its own example
    assert contexts(examples, rows, None, 0)[3] == "Q3:"
