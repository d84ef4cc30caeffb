"""Refuse, in one line and before any work, a run whose parts are each valid but do not fit together: a model family
with an objective it lacks, an objective with data of the wrong kind, an adapter the objective ignores, benchmark
evals of a model that cannot score text. The rules come from what each part declares (FamilySpec.objectives,
Task.objective / Task.accepts, a DataModule's or collator's `batch_kind`), so a new part joins them by declaring.
"""

from __future__ import annotations

import inspect

from hydra.utils import get_class, get_object
from omegaconf import DictConfig

from llmexp.errors import ConfigError
from llmexp.finetune.adapters import Adapter
from llmexp.models.spec import FamilySpec, family_of
from llmexp.tasks.base import Task


def choice(cfg: DictConfig, group: str, fallback: str) -> str:
    """`group=option` as the user wrote it (from Hydra's record of the chosen options) for messages."""
    try:
        from hydra.core.hydra_config import HydraConfig

        picked = HydraConfig.get().runtime.choices.get(group)
    except ValueError:  # outside a Hydra app
        picked = None
    return f"{group}={picked or fallback}"


def model_family(cfg: DictConfig) -> FamilySpec:
    """The family of `cfg.model` (its `_target_` is a config class of a FamilySpec)."""
    return family_of(get_class(cfg.model._target_))


def task_class(cfg: DictConfig) -> type[Task]:
    task = get_class(cfg.task._target_)
    if not (isinstance(task, type) and issubclass(task, Task)):
        raise ConfigError(f"task._target_={cfg.task._target_}: not an llmexp Task")
    return task


def batch_kind(data: DictConfig) -> str:
    """What the data config feeds a task: its collator's kind when it has one, else its DataModule's."""
    collator = data.get("collator")
    source = collator if isinstance(collator, DictConfig) and "_target_" in collator else data
    return getattr(get_class(source._target_), "batch_kind", "unknown")


def check_combination(cfg: DictConfig, family: FamilySpec) -> None:
    """ConfigError (one line) when the family, task, data, finetune and eval settings of `cfg` do not fit."""
    task = task_class(cfg)
    model_name = choice(cfg, "model", family.name)
    task_name = choice(cfg, "task", task.objective)
    if task.objective not in family.objectives:
        supported = ", ".join(family.objectives)
        raise ConfigError(
            f"{task_name} does not train model family {family.name!r} ({model_name}); it trains with task={supported}"
        )
    kind = batch_kind(cfg.data)
    if kind not in task.accepts:
        raise ConfigError(
            f"{task_name} trains on {' or '.join(task.accepts)} batches, but {choice(cfg, 'data', kind)} "
            f"(data.collator={_collator_name(cfg.data)}) makes {kind} batches; the experiment of this task sets "
            "both (see conf/experiment/)"
        )
    adapter = get_class(cfg.finetune._target_) if cfg.get("finetune") else Adapter
    if adapter is not Adapter and "finetune" not in inspect.signature(task).parameters:
        raise ConfigError(
            f"{choice(cfg, 'finetune', adapter.__name__)} has no effect on {task_name}; adapters apply to "
            "task=finetune_lm, sft and classification"
        )
    scorer = None
    if cfg.get("eval") and cfg.eval.get("tasks"):
        scorer = choice(cfg, "eval", "suite")
    for name, node in (cfg.get("callbacks") or {}).items():
        if isinstance(node, DictConfig) and "_target_" in node and getattr(get_object(node._target_), "scores_text", 0):
            scorer = scorer or f"callbacks.{name}"
    if scorer and not (family.causal and task.trains_language_model):
        what = f"model family {family.name!r} ({model_name})" if not family.causal else task_name
        raise ConfigError(
            f"{scorer} scores text with next-token log-likelihoods of a causal LM, which {what} does not train "
            "(use eval=val and callbacks=default)"
        )


def _collator_name(data: DictConfig) -> str:
    collator = data.get("collator")
    if isinstance(collator, DictConfig) and "_target_" in collator:
        return collator._target_.rsplit(".", 1)[-1]
    return "null"
