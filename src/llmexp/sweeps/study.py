"""The Optuna sweep loop: study in <sweep dir>/optuna.db, resume without re-running finished trials, failures recorded.

Each trial gets three overrides so that the job itself can reach the study (to report validation values and be
pruned): `++sweep.trial`, `++sweep.storage` and `++sweep.study`. Trial number N runs in <sweep dir>/N.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn
from omegaconf import DictConfig, open_dict
from optuna.trial import TrialState

from llmexp.errors import ConfigError

log = logging.getLogger(__name__)

STUDY_FILE = "optuna.db"
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
    """(storage URL, study name); an existing storage's only study is reused whatever it was called."""
    url = storage or f"sqlite:///{sweep_dir / STUDY_FILE}"
    if study_name:
        return url, study_name
    existing = [s.study_name for s in optuna.get_all_study_summaries(url)] if (sweep_dir / STUDY_FILE).exists() else []
    return url, existing[0] if len(existing) == 1 else sweep_dir.name


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
    trial: optuna.Trial, base: Sequence[str], url: str, name: str, rerun: list[dict], folder: Path | None
) -> list[str]:
    overrides = [*base, f"++sweep.trial={trial.number}", f"++sweep.storage='{url}'", f"++sweep.study='{name}'"]
    if folder is not None:  # resumed: each job's config is composed anew, and must land in the old folder
        overrides.append(f"hydra.sweep.dir='{folder}'")
    fixed = trial.system_attrs.get("fixed_params")
    match = next((r for r in rerun if fixed is not None and r["params"] == fixed), None)
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
            "params": {**t.params, **{k: v for k, v in t.user_attrs.items() if k != INTERRUPTED}},
            "interrupted": bool(t.user_attrs.get(INTERRUPTED)),
            "error": t.system_attrs.get("error"),
            "run_dir": str(sweep_dir / str(t.number)),
        }
        for t in study.get_trials(deepcopy=False)
    ]
    (sweep_dir / TRIALS_FILE).write_text(json.dumps(rows, indent=2))


def run_study(impl: Any, arguments: list[str]) -> None:
    """hydra-optuna-sweeper's ask/launch/tell loop, counting trials across resumed sessions."""
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    impl._process_searchspace_config()
    arguments = [a for a in arguments if not a.lstrip("+").startswith("sweep.resume=")]
    distributions, fixed = create_params_from_overrides([*impl._parse_sweeper_params_config(), *arguments])
    for name in fixed:
        distributions.pop(name, None)
    if isinstance(impl.sampler, functools.partial) and impl.sampler.func is optuna.samplers.GridSampler:
        grid = {n: impl._to_grid_sampler_choices(d) for n, d in distributions.items()}
        impl.sampler = impl.sampler(grid)
        impl.n_trials = min(impl.n_trials, math.prod(len(v) for v in grid.values()))
    sweep_dir = Path(str(impl.config.hydra.sweep.dir)).resolve()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    url, name = study_location(sweep_dir, impl.storage, impl.study_name)
    monitor = str((impl.config.get("sweep") or {}).get("monitor") or "val/loss")
    study = optuna.create_study(
        study_name=name, storage=url, sampler=impl.sampler, directions=impl._get_directions(), load_if_exists=True
    )
    rerun = recover(study, sweep_dir, monitor)
    for item in rerun:
        study.enqueue_trial(item["params"])
    to_go = impl.n_trials - finished_trials(study)
    log.info("study %s in %s: %d trial(s) finished, %d to go", name, url, impl.n_trials - to_go, max(to_go, 0))
    while to_go > 0:
        trials = [study.ask() for _ in range(min(to_go, impl.n_jobs))]
        base = impl._configure_trials(trials, distributions, fixed)
        folder = sweep_dir if (impl.config.get("sweep") or {}).get("resume") else None
        overrides = [_trial_overrides(t, b, url, name, rerun, folder) for t, b in zip(trials, base, strict=True)]
        returns = impl.launcher.launch(overrides, initial_job_idx=trials[0].number)
        study = optuna.load_study(study_name=name, storage=url, sampler=impl.sampler)
        failures = [e for t, r in zip(trials, returns, strict=True) if (e := _tell(study, t, r, monitor))]
        write_trials(study, sweep_dir)
        to_go -= len(trials)
        if len(failures) / len(returns) > impl.max_failure_rate:
            raise RuntimeError(
                f"{len(failures)} of {len(returns)} trials failed (max_failure_rate={impl.max_failure_rate})"
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
