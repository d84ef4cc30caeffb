"""The Optuna sweep loop: study in <sweep dir>/optuna.journal, resume without re-running finished trials, failures
recorded.

Each trial gets three overrides so that the job itself can reach the study (to report validation values and be
pruned): `++sweep.trial`, `++sweep.storage` and `++sweep.study`. Trial number N runs in <sweep dir>/N.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn
from omegaconf import DictConfig, open_dict
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState

from llmexp.errors import ConfigError
from llmexp.sweeps.space import grid_choices, search_space
from llmexp.sweeps.storage import STUDY_FILE, default_location, open_storage

log = logging.getLogger(__name__)

TRIALS_FILE = "trials.json"
BEST_FILE = "best_trial.json"
INTERRUPTED = "interrupted"


def apply_resume(config: DictConfig) -> None:
    """`sweep.resume=<dir>`: the sweep continues in that folder (its study, its trial folders)."""
    resume = (config.get("sweep") or {}).get("resume")
    if not resume:
        return
    folder = Path(str(resume)).resolve()
    if not (folder / STUDY_FILE).is_file():
        raise ConfigError(f"sweep.resume={resume}: no {STUDY_FILE} there; give the folder of an Optuna sweep")
    with open_dict(config):
        config.hydra.sweep.dir = str(folder)


def study_location(sweep_dir: Path, storage: str | None, study_name: str | None) -> tuple[str, str]:
    """(storage location, study name); an existing storage's only study is reused whatever it was called."""
    location = storage or default_location(sweep_dir)
    if study_name:
        return location, study_name
    existing = (
        optuna.study.get_all_study_names(open_storage(location)) if storage or (sweep_dir / STUDY_FILE).exists() else []
    )
    return location, existing[0] if len(existing) == 1 else sweep_dir.name


def _monitored(value: Any, monitor: str) -> float:
    """The trial's objective: the job's return value, or the monitored key of the metrics dict it returned."""
    if isinstance(value, Mapping):
        if monitor not in value:
            raise ValueError(f"the trial returned no {monitor!r} (it returned {sorted(value)})")
        value = value[monitor]
    return float(value)


def recover(study: optuna.Study, sweep_dir: Path, monitor: str) -> list[dict[str, Any]]:
    """Settle trials left RUNNING by a killed sweep: finished ones (final_metrics.json written) are told their value,
    the others are marked failed+interrupted. Returns the params and checkpoint of each interrupted trial."""
    rerun = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        run_dir = sweep_dir / str(trial.number)
        final = run_dir / "final_metrics.json"
        if final.is_file():
            value = _monitored(json.loads(final.read_text()), monitor)
            _settle(study, trial.number, value)
            log.info("trial %d had finished (%s=%.4f); not re-run", trial.number, monitor, value)
            continue
        study._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
        _settle(study, trial.number, state=TrialState.FAIL)
        last = run_dir / "checkpoints" / "last.ckpt"
        rerun.append({"params": dict(trial.params), "ckpt": str(last) if last.is_file() else None})
        log.info(
            "trial %d was interrupted; it runs again%s",
            trial.number,
            " from its checkpoint" if rerun[-1]["ckpt"] else "",
        )
    return rerun


def finished_trials(study: optuna.Study) -> int:
    """Trials that count against n_trials: completed, pruned, or failed on their own (not interrupted)."""
    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return sum(1 for t in study.get_trials(deepcopy=False, states=done) if not t.user_attrs.get(INTERRUPTED))


def _trial_overrides(
    trial: optuna.Trial, fixed: Sequence[str], location: str, name: str, rerun: list[dict], folder: Path | None
) -> list[str]:
    """The trial's sampled parameters (first: they name the run), the plain overrides as given, and where the job
    finds its study."""
    params = [f"{key}={value}" for key, value in trial.params.items()]
    study = [f"++sweep.trial={trial.number}", f"++sweep.storage='{location}'", f"++sweep.study='{name}'"]
    overrides = [*params, *fixed, *study]
    if folder is not None:  # resumed: each job's config is composed anew, and must land in the old folder
        overrides.append(f"hydra.sweep.dir='{folder}'")
    match = next((r for r in rerun if r["params"] == trial.params), None)  # an interrupted trial, enqueued again
    if match is not None:
        rerun.remove(match)
        if match["ckpt"]:
            overrides.append(f"ckpt_path='{match['ckpt']}'")
    return overrides


def _settle(study: optuna.Study, trial: optuna.Trial | int, *args: Any, **kwargs: Any) -> None:
    """study.tell; the grid sampler's request to stop after its last point (it raises outside a callback) is moot
    here, since the loop ends by itself when the grid is covered."""
    try:
        study.tell(trial, *args, **kwargs)
    except RuntimeError as err:
        if "Study.stop" not in str(err):
            raise


def _tell(study: optuna.Study, trial: optuna.Trial, ret: JobReturn, monitor: str) -> Exception | None:
    """Record one finished job; a trial the job already settled (pruned) is left as it is. `study` must be freshly
    loaded: a study's cache does not see what the job wrote to the storage of the trials it asked for itself."""
    if study._storage.get_trial(trial._trial_id).state.is_finished():
        return None
    try:
        value = _monitored(ret.return_value, monitor)
    except Exception as err:  # the job failed (return_value re-raises its exception) or returned no number
        study._storage.set_trial_system_attr(trial._trial_id, "error", f"{type(err).__name__}: {err}"[:500])
        _settle(study, trial.number, state=TrialState.FAIL)
        log.warning("trial %d failed: %s: %s", trial.number, type(err).__name__, str(err).splitlines()[0][:300])
        return err
    _settle(study, trial.number, value)
    return None


def write_trials(study: optuna.Study, sweep_dir: Path) -> None:
    """<sweep dir>/trials.json: number, state, value, params, run folder of every trial (for the summary)."""
    rows = [
        {
            "number": t.number,
            "state": t.state.name.lower(),
            "value": t.value,
            "params": t.params,
            "interrupted": bool(t.user_attrs.get(INTERRUPTED)),
            "error": t.system_attrs.get("error"),
            "run_dir": str(sweep_dir / str(t.number)),
        }
        for t in study.get_trials(deepcopy=False)
    ]
    (sweep_dir / TRIALS_FILE).write_text(json.dumps(rows, indent=2))


def trial_space(sweeper: Any, arguments: list[str]) -> tuple[dict[str, BaseDistribution], list[str]]:
    """(distributions, plain overrides) from the sweeper's `params` and the command line; with the grid sampler,
    the grid is built and n_trials capped at its size."""
    declared = [f"{key}={value}" for key, value in (sweeper.params or {}).items()]
    arguments = [a for a in arguments if not a.lstrip("+").startswith("sweep.resume=")]
    distributions, fixed = search_space([*declared, *arguments])
    if getattr(sweeper.sampler, "func", None) is optuna.samplers.GridSampler:  # a partial: it needs the grid
        grid = {name: grid_choices(name, dist) for name, dist in distributions.items()}
        sweeper.sampler = sweeper.sampler(grid)
        sweeper.n_trials = min(sweeper.n_trials, math.prod(len(v) for v in grid.values()))
    return distributions, [o.input_line for o in fixed.values() if not _is_delete_of_params(o)]


def _is_delete_of_params(override: Override) -> bool:
    """`~hydra.sweeper.params` empties the declared space; it is the sweep's business, not the trial's."""
    return override.is_delete() and override.key_or_group.startswith("hydra.sweeper")


def run_study(sweeper: Any, arguments: list[str]) -> None:
    """Ask, launch, tell in batches of n_jobs until n_trials trials of the study (resumed sessions included) are
    done. `sweeper`: the Hydra sweeper (sampler, direction, storage, study_name, n_trials, n_jobs,
    max_failure_rate, params, config, launcher)."""
    distributions, fixed = trial_space(sweeper, arguments)
    sweep_dir = Path(str(sweeper.config.hydra.sweep.dir)).resolve()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    location, name = study_location(sweep_dir, sweeper.storage, sweeper.study_name)
    monitor = str((sweeper.config.get("sweep") or {}).get("monitor") or "val/loss")
    storage = open_storage(location)
    study = optuna.create_study(
        study_name=name, storage=storage, sampler=sweeper.sampler, direction=sweeper.direction, load_if_exists=True
    )
    rerun = recover(study, sweep_dir, monitor)
    for item in rerun:
        study.enqueue_trial(item["params"])
    to_go = sweeper.n_trials - finished_trials(study)
    log.info("study %s in %s: %d trial(s) finished, %d to go", name, location, sweeper.n_trials - to_go, max(to_go, 0))
    folder = sweep_dir if (sweeper.config.get("sweep") or {}).get("resume") else None
    while to_go > 0:
        trials = [study.ask(distributions) for _ in range(min(to_go, sweeper.n_jobs))]
        overrides = [_trial_overrides(t, fixed, location, name, rerun, folder) for t in trials]
        returns = sweeper.launcher.launch(overrides, initial_job_idx=trials[0].number)
        study = optuna.load_study(study_name=name, storage=storage, sampler=sweeper.sampler)
        failures = [e for t, r in zip(trials, returns, strict=True) if (e := _tell(study, t, r, monitor))]
        write_trials(study, sweep_dir)
        to_go -= len(trials)
        if len(failures) / len(returns) > sweeper.max_failure_rate:
            raise RuntimeError(
                f"{len(failures)} of {len(returns)} trials failed (max_failure_rate={sweeper.max_failure_rate})"
            ) from failures[0]
    write_trials(study, sweep_dir)
    _report_best(study, sweep_dir, monitor)


def best_trial(study: optuna.Study, sweep_dir: Path) -> dict[str, Any] | None:
    """The best completed trial: number, value, folder, resolved config and the command that re-runs it."""
    from llmexp.sweeps.rerun import rerun_command

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    best = study.best_trial
    run_dir = sweep_dir / str(best.number)
    command = rerun_command(run_dir) if (run_dir / ".hydra" / "overrides.yaml").is_file() else None
    return {
        "number": best.number,
        "value": best.value,
        "run_dir": str(run_dir),
        "config": str(run_dir / "config.yaml"),
        "command": command,
    }


def _report_best(study: optuna.Study, sweep_dir: Path, monitor: str) -> None:
    best = best_trial(study, sweep_dir)
    if best is None:
        log.warning("no trial of the sweep completed")
        return
    (sweep_dir / BEST_FILE).write_text(json.dumps(best, indent=2))
    log.info("best trial %d (%s=%.4f); re-run: %s", best["number"], monitor, best["value"], best["command"])
