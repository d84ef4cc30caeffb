"""The study bookkeeping of resumable sweeps, on a real journal-file study: recovery after a kill, counting, re-run
lines, and the search space read from Hydra's sweep syntax."""

import json

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from llmexp.errors import ConfigError
from llmexp.sweeps.rerun import rerun_command
from llmexp.sweeps.space import grid_choices, search_space
from llmexp.sweeps.storage import STUDY_FILE, open_storage
from llmexp.sweeps.study import apply_resume, finished_trials, recover


@pytest.fixture
def study(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name="s", storage=open_storage(str(tmp_path / STUDY_FILE)))


def test_a_killed_sweeps_running_trials_are_settled_from_their_folders(study, tmp_path):
    trials = [study.ask({"lr": FloatDistribution(0.0, 1.0)}) for _ in range(3)]
    study.tell(trials[0], 0.5)
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "final_metrics.json").write_text(json.dumps({"val/loss": 1.25, "step": 10}))
    (tmp_path / "2" / "checkpoints").mkdir(parents=True)
    (tmp_path / "2" / "checkpoints" / "last.ckpt").write_bytes(b"x")

    rerun = recover(study, tmp_path, "val/loss")

    settled = study.get_trials()
    assert [t.state for t in settled] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL]
    assert settled[1].value == 1.25  # finished before the kill: its result is kept, it is not re-run
    assert settled[2].user_attrs["interrupted"] is True
    assert rerun == [{"params": settled[2].params, "ckpt": str(tmp_path / "2" / "checkpoints" / "last.ckpt")}]
    assert finished_trials(study) == 2  # the interrupted trial does not count against n_trials


def test_resume_needs_a_folder_holding_a_study(tmp_path):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"sweep": {"resume": str(tmp_path)}, "hydra": {"sweep": {"dir": "elsewhere"}}})
    with pytest.raises(ConfigError, match=r"sweep.resume=.*: no optuna.journal there"):
        apply_resume(cfg)
    (tmp_path / STUDY_FILE).write_bytes(b"")
    apply_resume(cfg)
    assert cfg.hydra.sweep.dir == str(tmp_path.resolve())


def test_rerun_command_keeps_the_trials_overrides_only(tmp_path):
    (tmp_path / ".hydra").mkdir()
    overrides = [
        "optimizer.lr=0.0012",
        "hparams_search=optuna",
        "model=gpt_tiny",
        "++sweep.trial=3",
        "++sweep.storage='/x/optuna.journal'",
        "hydra.sweep.dir='/x'",
        "hydra/launcher=slurm",
        "data.path=[a b,c]",
    ]
    (tmp_path / ".hydra" / "overrides.yaml").write_text(json.dumps(overrides))
    assert rerun_command(tmp_path) == "llmexp-train optimizer.lr=0.0012 model=gpt_tiny 'data.path=[a b,c]'"


@pytest.mark.parametrize(
    ("option", "cls"),
    [
        ("median", "MedianPruner"),
        ("successive_halving", "SuccessiveHalvingPruner"),
        ("hyperband", "HyperbandPruner"),
        ("none", "NopPruner"),
    ],
)
def test_every_pruner_option_reaches_the_trials_pruning_callback(make_cfg, option, cls):
    from hydra.utils import instantiate

    cfg = make_cfg("hparams_search=optuna", f"sweep/pruner={option}", "++sweep.trial=4", "++sweep.study=s")
    callback = instantiate(cfg.callbacks.optuna_pruning)
    assert type(callback.pruner).__name__ == cls
    assert (callback.trial_number, callback.study_name, callback.monitor) == (4, "s", "val/loss")
    assert cfg.hydra.sweeper._target_.endswith("ResumableOptunaSweeper")


def test_summary_marks_pruned_failed_and_interrupted_trials_and_names_the_best(tmp_path):
    import csv

    import yaml

    from llmexp.tracking.sweep_summary import write_summary

    trials = []
    for number, state, loss in ((0, "complete", 5.0), (1, "pruned", 6.2), (2, "fail", None), (3, "complete", 4.5)):
        job = tmp_path / str(number)
        (job / ".hydra").mkdir(parents=True)
        overrides = [f"optimizer.lr={number + 1}e-3", f"++sweep.trial={number}", "++sweep.storage='sqlite:///x'"]
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        if loss is not None:
            (job / "final_metrics.json").write_text(json.dumps({"val/loss": loss}))
        error = "RuntimeError: boom" if state == "fail" else None
        trials.append({"number": number, "state": state, "interrupted": False, "error": error})
    trials[2]["interrupted"] = True
    (tmp_path / "trials.json").write_text(json.dumps(trials))

    with open(write_summary(tmp_path, finished=True)) as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["job"], r["status"]) for r in rows] == [("3", "ok"), ("0", "ok"), ("1", "pruned"), ("2", "interrupted")]
    assert not [k for k in rows[0] if k.startswith("sweep.")]  # study bookkeeping is not a column
    markdown = (tmp_path / "summary.md").read_text()
    assert f"Best: job 3 (val/loss=4.5), config {tmp_path / '3' / 'config.yaml'}" in markdown
    assert "Re-run: `llmexp-train optimizer.lr=4e-3`" in markdown


def test_search_space_reads_hydra_sweep_syntax_and_the_command_line_wins():
    dists, fixed = search_space(
        [
            "optimizer.lr=tag(log, interval(1e-4, 1e-2))",
            "data.block_size=choice(64,128)",
            "scheduler.warmup_steps=range(10,40,10)",
            "optimizer.weight_decay=interval(0.0, 0.2)",
            "model=gpt_tiny",
            "optimizer.weight_decay=0.1",  # given on the command line after the declared params: fixed
        ]
    )
    assert dists == {
        "optimizer.lr": FloatDistribution(1e-4, 1e-2, log=True),
        "data.block_size": CategoricalDistribution([64, 128]),
        "scheduler.warmup_steps": IntDistribution(10, 30, step=10),  # Hydra's range excludes its end
    }
    assert [o.input_line for o in fixed.values()] == ["model=gpt_tiny", "optimizer.weight_decay=0.1"]
    assert grid_choices("w", dists["scheduler.warmup_steps"]) == [10, 20, 30]
    with pytest.raises(ConfigError, match=r"^optimizer.lr: the grid sampler needs choice"):
        grid_choices("optimizer.lr", dists["optimizer.lr"])


@pytest.mark.parametrize(
    ("option", "cls"), [("tpe", "TPESampler"), ("random", "RandomSampler"), ("grid", "GridSampler")]
)
def test_every_sampler_option_builds_an_optuna_sampler_without_hydra_optuna_sweeper(make_cfg, option, cls):
    from hydra.utils import instantiate

    cfg = make_cfg("hparams_search=optuna", f"hydra/sweeper/sampler={option}", "hydra.sweeper.sampler.seed=3")
    sampler = instantiate(cfg.hydra.sweeper.sampler)
    if option == "grid":  # a partial: the sweeper gives it the grid
        sampler = sampler({"optimizer.lr": [1e-3, 3e-3]})
    assert type(sampler).__name__ == cls
