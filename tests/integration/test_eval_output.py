"""What `llmexp-eval` tells the person waiting for it: the tasks and the limit in force up front, each task's start,
progress and time, a table with a header and the chance baseline, and a line in the training run's evals.jsonl."""

from __future__ import annotations

import json

from eval_helpers import run_cli, write_checkpoint, write_jsonl


def test_eval_announces_its_limit_shows_progress_and_links_to_the_run(tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("[]\n")  # a run folder, as llmexp-train leaves it
    ckpt = write_checkpoint(run / "checkpoints" / "last.ckpt")
    rows = [{"query": f"{a}+{a}=", "choices": [str(2 * a), str(2 * a + 1), "x"], "gold": 0} for a in range(6)]
    quiz = write_jsonl(tmp_path / "quiz.jsonl", rows)
    args = [f"ckpt_path={ckpt}", "eval=multiple_choice", f"eval.tasks=[mc:{quiz}]", "eval.limit=4", "device=cpu"]
    result = run_cli("llmexp.cli.eval", [*args, f"hydra.run.dir={tmp_path / 'out'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "eval.limit=4: each task scores at most its first 4 items" in output
    assert "eval: quiz: 4 items (eval.limit)" in output and "eval: quiz: done in" in output
    assert "eval quiz" in result.stderr and "12/12" in result.stderr  # the bar: 4 items x 3 choices scored
    table = result.stdout.splitlines()
    header = next(i for i, line in enumerate(table) if line.split()[:3] == ["task", "metric", "value"])
    chance = next(line for line in table[header:] if line.split()[:2] == ["quiz", "chance"])
    assert float(chance.split()[2]) == round(1 / 3, 4)
    (line,) = (run / "evals.jsonl").read_text().splitlines()
    assert json.loads(line)["results"]["quiz/n"] == 4
