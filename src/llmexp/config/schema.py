"""Typed checks of a composed config, before any work: every `_target_` node against its callable's signature
(unknown keys, wrong types), structured schemas for the nodes that have no target, and impossible combinations.

A target's own signature is its schema, so a new option needs no second copy of its fields here.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import inspect
import numbers
import os
import types
import typing
from dataclasses import dataclass
from typing import Any

from hydra.utils import get_method
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from llmexp.config import ranges
from llmexp.config.hardware import check_precision, cuda_devices
from llmexp.errors import ConfigError, UserError


@dataclass
class EvalSchema:
    final_validation: bool = True
    limit_batches: int | None = None


@dataclass
class BatchSizeFinderSchema:
    enabled: bool = False
    start: int = 1
    max_size: int = 256
    steps: int = 8
    tolerance: float = 0.05


@dataclass
class PathsSchema:
    root_dir: str = "."
    output_dir: str = "."
    cache_dir: str = "outputs/cache"


# Nodes that map keys the user chooses to values (a task name to its file): any key below them is one to accept as
# written (`eval.files.piqa=<path>`), where an unknown key anywhere else is a typo to refuse.
OPEN_MAPPINGS = ("eval.files", "eval.fewshot_files", "callbacks.periodic_eval.files")

SCHEMAS = {"eval": EvalSchema, "batch_size_finder": BatchSizeFinderSchema, "paths": PathsSchema}
ROOT_TYPES = {"seed": int, "ckpt_path": str | None, "task_name": str}
# Values our code resolves before they reach the target (llmexp.training.trainer.resolve_precision).
RESOLVED_IN_CODE = {"trainer.precision": ("auto",)}
_MISSING = object()


def _value(node: DictConfig, key: str) -> Any:
    """The value at `key`, resolved where possible; _MISSING for `???` or what cannot be resolved yet."""
    if OmegaConf.is_missing(node, key):
        return _MISSING
    try:
        value = node[key]
    except OmegaConfBaseException:  # ${hydra:...} outside a running app, and the like
        return _MISSING
    return OmegaConf.to_container(value, resolve=False) if isinstance(value, DictConfig | ListConfig) else value


def _accepts(annotation: Any, value: Any) -> bool:
    """Whether `value` (plain YAML data) fits a type hint; hints we cannot judge accept anything."""
    origin = typing.get_origin(annotation)
    if annotation is Any or annotation is inspect.Parameter.empty or isinstance(annotation, typing.TypeVar):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(arg, value) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    base = origin or annotation
    if base in (list, tuple, collections.abc.Sequence):
        return isinstance(value, list)
    if base in (dict, collections.abc.Mapping):
        return isinstance(value, dict)
    if isinstance(base, type) and isinstance(value, str | int | float | bool):
        # A class-typed argument given a plain value: only paths take strings, only numbers take numbers.
        if isinstance(value, str):
            return issubclass(base, os.PathLike | str)
        return issubclass(base, numbers.Number)
    return True


def _type_name(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "").replace("NoneType", "None")
    return annotation.__name__ if isinstance(annotation, type) else text


def _check_target(node: DictConfig, where: str) -> None:
    target = node.get("_target_")
    try:
        fn = get_method(target) if isinstance(target, str) else None
    except Exception:  # an import problem: instantiate reports it with the real cause
        return
    if fn is None:
        return
    try:
        signature = inspect.signature(fn)
        hints = typing.get_type_hints(fn.__init__ if inspect.isclass(fn) else fn)
    except (TypeError, ValueError, NameError):
        return
    params = signature.parameters
    open_ended = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values())
    for key in node:
        key = str(key)
        if key.startswith("_"):
            continue
        name = f"{where}.{key}" if where else key
        if key not in params:
            if open_ended:
                continue
            _refuse_unknown(name, key, target, params)
        value = _value(node, key)
        if value is _MISSING or (isinstance(value, dict) and "_target_" in value):
            continue
        annotation = hints.get(key, params[key].annotation)
        if value in RESOLVED_IN_CODE.get(name, ()):
            continue
        if not _accepts(annotation, value):
            choices = _literal_choices(annotation)
            if choices:
                close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ConfigError(f"{name}={value}: not one of {', '.join(map(str, choices))}{hint}")
            raise ConfigError(f"{name}={value!r}: wrong type, expected {_type_name(annotation)}")
        if isinstance(value, int | float | list) and not isinstance(value, bool):  # null, "auto": the type said
            check_range(name, value, ranges.for_target(target, key))
    if dataclasses.is_dataclass(fn):
        _construct(fn, node, where)


def _refuse_unknown(name: str, key: str, target: str, params: typing.Mapping[str, inspect.Parameter]) -> None:
    valid = sorted(k for k, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ConfigError(f"{name}: not an argument of {target}; valid: {', '.join(valid)}{hint}")


def check_range(name: str, value: Any, declared: ranges.Declared | None) -> None:
    """ConfigError naming the key and its allowed range when `value` lies outside it."""
    if declared is not None and value is not _MISSING and not ranges.allows(declared, value):
        raise ConfigError(f"{name}={value!r}: must be {ranges.describe(declared)}")


def _construct(fn: Any, node: DictConfig, where: str) -> None:
    """Build a config dataclass (a tokenizer spec, prepare's stages) from its node, so that its own checks (the
    smallest vocabulary of a tokenizer kind, ...) run before any work; nodes completed in code are left alone."""
    values = {str(k): _value(node, str(k)) for k in node if not str(k).startswith("_")}
    if any(v is _MISSING or (isinstance(v, dict) and "_target_" in v) for v in values.values()):
        return
    try:
        fn(**values)
    except TypeError:  # an argument the code passes (vocab_size from the tokenizer, ...)
        return
    except (ValueError, UserError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(message if message.startswith(f"{where}.") else f"{where}: {message}") from err


def _literal_choices(annotation: Any) -> list[Any]:
    """The values a `Literal[...]` (or an optional one) allows; [] for other hints."""
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [c for arg in typing.get_args(annotation) for c in _literal_choices(arg)]
    return []


def check_types(cfg: DictConfig, where: str = "") -> None:
    """Every `_target_` node below `cfg` against its callable's signature; raise ConfigError on the first problem."""
    if "_target_" in cfg:
        _check_target(cfg, where)
    for key in cfg:
        child = cfg._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_interpolation():
            check_types(child, f"{where}.{key}" if where else str(key))


def check_schemas(cfg: DictConfig) -> None:
    """Nodes without a target (eval, batch_size_finder, paths, top-level values): the types of their dataclass
    schema's fields. Keys a schema does not name are left to the override check, so a new option of a group does
    not have to be declared here first."""
    for key, schema in SCHEMAS.items():
        node = cfg.get(key)
        if not isinstance(node, DictConfig) or "_target_" in node:
            continue
        for name, annotation in typing.get_type_hints(schema).items():
            if name in node and (value := _value(node, name)) is not _MISSING and not _accepts(annotation, value):
                raise ConfigError(f"{key}.{name}={value!r}: wrong type, expected {_type_name(annotation)}")
    for key, annotation in ROOT_TYPES.items():
        if key in cfg and (value := _value(cfg, key)) is not _MISSING and not _accepts(annotation, value):
            raise ConfigError(f"{key}={value!r}: wrong type, expected {_type_name(annotation)}")


def check_path_ranges(node: DictConfig, where: str = "") -> None:
    """Values declared by their path (`llmexp.config.ranges.BY_PATH`): nodes without a target, top-level values."""
    for key in node:
        name = f"{where}.{key}" if where else str(key)
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            if not child._is_none() and not child._is_interpolation():
                check_path_ranges(child, name)
            continue
        check_range(name, _value(node, key), ranges.for_path(name))


def _uses_cpu(accelerator: Any) -> bool:
    return accelerator == "cpu" or (accelerator in ("auto", None) and not cuda_devices())


def check_combinations(cfg: DictConfig) -> None:
    """Settings that are each valid but impossible together (train configs)."""
    trainer, data, model = cfg.get("trainer"), cfg.get("data"), cfg.get("model")
    if isinstance(trainer, DictConfig):
        accelerator, precision = _value(trainer, "accelerator"), _value(trainer, "precision")
        devices = _value(trainer, "devices")
        if precision is not _MISSING and accelerator is not _MISSING:
            check_precision(precision, accelerator)
        strategy = cfg.get("strategy")
        single = isinstance(strategy, DictConfig) and str(strategy.get("_target_", "")).endswith("single_device")
        if single and isinstance(devices, int) and devices > 1:
            raise ConfigError(
                f"trainer.devices={devices} with strategy=single (one process); use strategy=ddp for several devices"
            )
        if not _uses_cpu(accelerator) and isinstance(devices, int) and devices > cuda_devices():
            raise ConfigError(
                f"trainer.devices={devices}, but this machine has {cuda_devices()} GPUs; lower "
                "trainer.devices or set trainer.accelerator=cpu"
            )
    if isinstance(data, DictConfig) and isinstance(model, DictConfig) and not cfg.get("ckpt_path"):
        block, context = _value(data, "block_size"), _value(model, "max_seq_len")
        if isinstance(block, int) and isinstance(context, int) and block > context:
            raise ConfigError(
                f"data.block_size={block} exceeds model.max_seq_len={context}; lower data.block_size or raise "
                "model.max_seq_len"
            )


def validate_config(cfg: DictConfig, combinations: bool = True) -> None:
    """All checks of a composed config; ConfigError (one line) on the first problem."""
    check_schemas(cfg)
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]) if "hydra" in cfg else cfg
    check_types(job)
    check_path_ranges(job)
    if combinations:
        check_combinations(cfg)
