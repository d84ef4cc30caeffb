"""Check command-line overrides before any work, and say what is wrong in one line.

Hydra reports a typo'd key as "Could not override 'optimizer.lrr'" without the valid keys, and an unknown option
only after a stack of text. Here every override is checked against the composed config tree first, so the user gets
the key, what is allowed there, and the closest match. Sweeps (`a=1,2`) check every listed value.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from llmexp.config.schema import OPEN_MAPPINGS, validate_config
from llmexp.errors import ConfigError

MAX_COMPOSITIONS = 64


def _closest(word: str, choices: Sequence[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _variants(parsed: list[Override]) -> Iterator[list[str]]:
    """Override lists to compose: the first value of every sweep, then each other sweep value in turn."""

    def values(o: Override) -> list[str] | None:
        if not o.is_sweep_override():
            return None
        try:
            return list(o.sweep_string_iterator())
        except Exception:  # interval() and other non-enumerable sweeps: checked by the sweeper itself
            return []

    def line(o: Override, value: str | None) -> str:
        if value is None:
            return o.input_line
        prefix = {OverrideType.ADD: "+", OverrideType.FORCE_ADD: "++"}.get(o.type, "")
        package = f"@{o.package}" if o.package else ""
        return f"{prefix}{o.key_or_group}{package}={value}"

    options = [values(o) for o in parsed]
    base = [line(o, None if v is None else v[0]) for o, v in zip(parsed, options, strict=True) if v != []]
    yield base
    count = 1
    for index, (o, vals) in enumerate(zip(parsed, options, strict=True)):
        for value in (vals or [])[1:]:
            if count >= MAX_COMPOSITIONS:
                return
            variant = list(base)
            position = sum(1 for v in options[:index] if v != [])
            variant[position] = line(o, value)
            count += 1
            yield variant


def _missing_keys(node: DictConfig | ListConfig, prefix: str = "") -> Iterator[str]:
    """Keys left at `???`, found without resolving interpolations (those may need a running Hydra app)."""
    keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        if OmegaConf.is_missing(node, key):
            yield f"{prefix}{key}"
            continue
        child = node._get_node(key)
        if isinstance(child, DictConfig | ListConfig) and not child._is_none() and not child._is_interpolation():
            yield from _missing_keys(child, f"{prefix}{key}.")


def open_mapping_overrides(args: Sequence[str]) -> list[str]:
    """`eval.files.piqa=<path>` in the form Hydra accepts (`++eval.files.piqa=<path>`): Hydra refuses a key its
    config lacks unless marked with `+`, but under a mapping of user keys (schema.OPEN_MAPPINGS) new keys are the point.
    Other arguments (flags, `+`/`~` overrides, other keys) pass through unchanged."""

    def under_open_mapping(arg: str) -> bool:
        key = arg.split("=", 1)[0] if "=" in arg else ""
        return bool(re.fullmatch(r"[\w.]+", key)) and any(key.startswith(f"{m}.") for m in OPEN_MAPPINGS)

    return [f"++{arg}" if under_open_mapping(arg) else arg for arg in args]


def _check_key(cfg: DictConfig, key: str) -> None:
    node = cfg
    walked: list[str] = []
    for part in key.split("."):
        where = ".".join(walked) or "the top level"
        if where in OPEN_MAPPINGS and isinstance(node, DictConfig):
            return  # a mapping of user keys (a task name -> its file): every key is a new one
        if isinstance(node, DictConfig):
            keys = sorted(str(k) for k in node)
            if part not in keys:
                # Hydra's own keys (_target_, _partial_) are noise in a list meant for a person.
                keys = [k for k in keys if not k.startswith("_")] or keys
                raise ConfigError(
                    f"{key}: no such key; valid keys under {where}: {', '.join(keys)}{_closest(part, keys)}"
                )
            node = node._get_node(next(k for k in node if str(k) == part))  # keys may be ints (n-gram sizes)
        elif isinstance(node, ListConfig):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{key}: {where} is a list of {len(node)} items; '{part}' is not an index of it")
            node = node._get_node(int(part))
        else:
            raise ConfigError(f"{key}: {where} is a value, not a group of keys")
        walked.append(part)
        if hasattr(node, "_is_none") and node._is_none() and len(walked) < len(key.split(".")):
            raise ConfigError(f"{key}: {'.'.join(walked)} is null here, so it has no keys to set")


def _check_one(config_name: str, overrides: list[str], combinations: bool = True, require: bool = True) -> None:
    loader = GlobalHydra.instance().config_loader()
    parsed = OverridesParser.create().parse_overrides(overrides)
    groups = [o for o in parsed if loader.repository.group_exists(o.key_or_group)]
    for o in groups:
        value = o.value()
        if o.type == OverrideType.DEL or value is None or not isinstance(value, str):
            continue
        choices = loader.get_group_options(o.key_or_group)
        if value not in choices:
            raise ConfigError(
                f"{o.key_or_group}={value}: no such option in group '{o.key_or_group}'; "
                f"choose one of: {', '.join(choices)}{_closest(value, choices)}"
            )
    try:
        base = compose(config_name, overrides=[o.input_line for o in groups], return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(_first_line(err)) from err
    for o in parsed:
        if o in groups or o.type in (OverrideType.ADD, OverrideType.FORCE_ADD):
            continue
        if "/" in o.key_or_group:
            raise ConfigError(
                f"{o.key_or_group}: no such config group; groups: {', '.join(sorted(loader.list_groups('')))}"
            )
        _check_key(base, o.key_or_group)
    try:
        cfg = compose(config_name, overrides=open_mapping_overrides(overrides))
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(_first_line(err)) from err
    missing = sorted(_missing_keys(cfg)) if require else []
    if missing:
        raise ConfigError(
            f"{', '.join(missing)}: required, but not given; set it on the command line ({missing[0]}=...)"
        )
    validate_config(cfg, combinations=combinations)


def validate_overrides(conf_dir: Path, config_name: str, overrides: list[str], require: bool = True) -> None:
    """Raise ConfigError, naming the key and what is allowed, for the first bad override. `require=False` lets
    required (`???`) keys stay unset, for `--cfg job`, which only prints the config."""
    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_overrides([override])
        except HydraException as err:
            detail = str(err).strip().splitlines()[-1]
            raise ConfigError(f"cannot parse the override {override!r}: {detail}") from err
    parsed = parser.parse_overrides(overrides)
    GlobalHydra.instance().clear()
    # Keys, options and types are checked for every value of a sweep; impossible combinations only for a single run:
    # in a sweep, one bad trial is recorded as failed (or named by --preflight) while the others run.
    sweep = any(o.is_sweep_override() for o in parsed)
    with initialize_config_dir(str(conf_dir), version_base="1.3"):
        for variant in _variants(parsed):
            _check_one(config_name, variant, combinations=not sweep, require=require)


def compose_config(
    config_name: str, overrides: Sequence[str] = (), output_dir: str | Path = ".", conf_dir: Path | None = None
) -> DictConfig:
    """Compose a config outside a Hydra app (tests, notebooks); `${hydra:...}` resolves as in a run in output_dir."""
    from hydra.core.hydra_config import HydraConfig

    from llmexp.config import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(conf_dir or config_dir()), version_base="1.3"):
        cfg = compose(config_name, overrides=open_mapping_overrides(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(Path(output_dir).resolve())
        cfg.hydra.runtime.cwd = os.getcwd()
    HydraConfig.instance().set_config(cfg)
    return cfg


def to_container(cfg: DictConfig) -> dict:
    """The resolved config as plain data, without Hydra's own node."""
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    return OmegaConf.to_container(job, resolve=True)


def job_overrides() -> list[str]:
    """The command-line overrides of the running Hydra job ([] outside a Hydra app)."""
    from hydra.core.hydra_config import HydraConfig

    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


def in_multirun() -> bool:
    """True inside a job of a Hydra multirun (a sweep trial)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
