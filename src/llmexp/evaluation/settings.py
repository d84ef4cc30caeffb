"""What an evaluation runs and how: the `eval` config option as a checked dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import DictConfig, OmegaConf

from llmexp.errors import ConfigError
from llmexp.evaluation.tasks import get_tasks

# Keys of the train-time options (eval=val / none) that experiments set and the task suite ignores.
TRAIN_TIME_KEYS = ("final_validation", "limit_batches")
PERPLEXITY_MODES = ("auto", "document", "stream")
SPLITS = ("train", "validation", "dev", "test")


@dataclass
class EvalSettings:
    """What to evaluate and how; built from an `eval` config option (conf/eval/suite.yaml documents each field)."""

    tasks: list[str]
    data_dir: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    fewshot_files: dict[str, str] = field(default_factory=dict)
    fewshot_split: str | None = None
    limit: int | None = None
    num_fewshot: int = 0
    batch_size: int = 16
    missing: str = "error"
    use_hub: bool = False
    seed: int = 1234
    max_new_tokens: int = 64
    perplexity_files: list[str] = field(default_factory=list)
    perplexity_mode: str = "auto"
    perplexity_max_documents: int | None = None
    code_samples: int = 1
    code_k: list[int] = field(default_factory=lambda: [1])
    code_temperature: float = 0.8
    code_max_new_tokens: int = 128
    code_timeout_s: float = 5.0
    code_memory_mb: int = 512
    lm_eval_include_path: str | None = None

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ConfigError("eval.tasks is empty; name at least one task")
        for key, value, allowed in (
            ("missing", self.missing, ("error", "skip")),
            ("perplexity_mode", self.perplexity_mode, PERPLEXITY_MODES),
            ("fewshot_split", self.fewshot_split, (None, *SPLITS)),
        ):
            if value not in allowed:
                raise ConfigError(f"eval.{key}={value!r} is not one of {list(allowed)}")
        for key, value in (("limit", self.limit), ("perplexity_max_documents", self.perplexity_max_documents)):
            if value is not None and value < 1:
                raise ConfigError(f"eval.{key} must be >= 1 or null (got {value})")
        if self.num_fewshot < 0:
            raise ConfigError(f"eval.num_fewshot must be >= 0 (got {self.num_fewshot})")
        too_big = [k for k in self.code_k if k > self.code_samples]
        if too_big:
            raise ConfigError(
                f"eval.code_k={self.code_k} needs eval.code_samples >= {max(too_big)} (got {self.code_samples})"
            )
        get_tasks(self.tasks)

    @classmethod
    def from_config(cls, node: DictConfig | dict[str, Any]) -> EvalSettings:
        data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
        if "tasks" not in data:
            raise ConfigError(
                "this eval option has no tasks (eval=val and eval=none are the train-time options); "
                "use eval=suite, eval=multiple_choice, eval=generation or eval=code"
            )
        for key in TRAIN_TIME_KEYS:  # set by experiments for eval=val; meaningless to the task suite
            data.pop(key, None)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"eval: unknown keys {unknown}; allowed: {sorted(known)}")
        return cls(**data)
