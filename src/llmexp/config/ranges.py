"""The declared range of every numeric config value, checked before any work (`llmexp.config.schema`).

Arguments of a `_target_` are declared under the target's name (wherever a config places it); values of nodes
without a target under their dotted path (`*` matches one key). A test composes every shipped config and fails on a
numeric value that has no declared range here.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Range:
    """Numbers from `low` to `high` (either end open or missing), optionally integers or fractions only; `also`
    lists values allowed besides (-1 for "no limit", None for null); `length` asks for a list of that many numbers
    (0: any number of them), each in the range."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    kind: type | None = None  # int: integers only; float: only numbers written with a decimal point
    also: tuple[Any, ...] = ()
    note: str = ""  # what the values in `also` mean
    length: int | None = None

    def allows(self, value: Any) -> bool:
        if any(type(value) is type(a) and value == a for a in self.also):
            return True
        if self.length is not None:
            sized = isinstance(value, list) and (self.length == 0 or len(value) == self.length)
            return sized and all(self._in_range(v) for v in value)
        return self._in_range(value)

    def _in_range(self, value: Any) -> bool:
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            return False
        if (self.kind is int and not isinstance(value, int)) or (self.kind is float and not isinstance(value, float)):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        what = {int: "an integer", float: "a fraction"}.get(self.kind, "a number")  # type: ignore[arg-type]
        low, high = _number(self.low), _number(self.high)
        if self.low is not None and self.high is not None:
            bounds = f"in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        elif self.low is not None:
            bounds = f"{'>' if self.low_open else '>='} {low}"
        else:
            bounds = f"{'<' if self.high_open else '<='} {high}"
        text = f"{what} {bounds}"
        if self.length is not None:
            count = "numbers" if self.length == 0 else f"{self.length} numbers"
            text = f"a list of {count}, each {bounds}"
        extra = ", ".join("null" if a is None else str(a) for a in self.also)
        return f"{text}, or {extra}{f' ({self.note})' if self.note else ''}" if extra else text


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


Declared = Range | tuple[Range, ...]  # a tuple: any one of them


def allows(declared: Declared, value: Any) -> bool:
    return any(r.allows(value) for r in (declared if isinstance(declared, tuple) else (declared,)))


def describe(declared: Declared) -> str:
    return " or ".join(str(r) for r in (declared if isinstance(declared, tuple) else (declared,)))


COUNT = Range(1, kind=int)
COUNT_OR_NULL = Range(1, kind=int, also=(None,))
NONNEGATIVE = Range(0, kind=int)
POSITIVE = Range(0, low_open=True)
SHARE = Range(0, 1)
OPEN_SHARE = Range(0, 1, low_open=True, high_open=True)
DROPOUT = Range(0, 1, high_open=True)
SEED = Range(0, 2**32 - 1, kind=int)  # what Lightning's seed_everything and NumPy accept
SHARE_OF_AN_EPOCH = Range(0, 1, low_open=True, kind=float)
BATCHES = (Range(0, kind=int, also=(None,)), Range(0, 1, kind=float))  # an int counts batches, a float is a share

# Sampling settings: generate, export's generation_config.json, the samples callback, eval and the server.
SAMPLING: dict[str, Declared] = {
    "max_new_tokens": COUNT,
    "temperature": Range(0, 2),
    "top_k": COUNT_OR_NULL,
    "top_p": Range(0, 1, low_open=True, also=(None,)),
    "repetition_penalty": Range(0.01, 10),
}
_MODEL = {
    "vocab_size": COUNT,
    "n_layer": COUNT,
    "n_decoder_layer": COUNT_OR_NULL,
    "n_head": COUNT,
    "n_kv_head": COUNT_OR_NULL,
    "head_dim": COUNT,
    "n_embd": COUNT,
    "max_seq_len": COUNT,
    "intermediate_size": COUNT_OR_NULL,
    "type_vocab_size": COUNT,
    "relative_buckets": COUNT,
    "relative_max_distance": COUNT,
    "norm_eps": POSITIVE,
    "rope_theta": POSITIVE,
    "dropout": DROPOUT,
    "init_std": POSITIVE,
    "pad_token_id": NONNEGATIVE,
}
_LOADER = {"block_size": COUNT, "batch_size": COUNT, "val_batch_size": COUNT_OR_NULL, "num_workers": NONNEGATIVE}
_ROWS = {"val_fraction": DROPOUT, "max_train_rows": COUNT_OR_NULL, "max_val_rows": COUNT_OR_NULL}
_FRACTIONS = "max_symbol_ratio max_bullet_line_fraction max_ellipsis_line_fraction max_duplicate_line_fraction"
_FRACTIONS += " max_duplicate_line_char_fraction min_alpha_word_fraction min_language_score"
_CLEAN = {name: SHARE for name in _FRACTIONS.split()}

BY_TARGET: dict[str, dict[str, Declared]] = {
    "lightning.pytorch.Trainer": {
        "max_steps": Range(1, kind=int, also=(-1,), note="no limit"),
        "min_steps": Range(0, kind=int, also=(None,)),
        "max_epochs": Range(1, kind=int, also=(-1, None), note="no limit"),
        "min_epochs": Range(0, kind=int, also=(None,)),
        "devices": Range(1, kind=int, also=(-1,), note="all"),
        "num_nodes": COUNT,
        "val_check_interval": (COUNT_OR_NULL, SHARE_OF_AN_EPOCH),  # an int counts steps, a float is a share
        "check_val_every_n_epoch": COUNT_OR_NULL,
        "limit_train_batches": BATCHES,
        "limit_val_batches": BATCHES,
        "limit_test_batches": BATCHES,
        "num_sanity_val_steps": Range(0, kind=int, also=(-1,), note="all"),
        "log_every_n_steps": NONNEGATIVE,
        "gradient_clip_val": Range(0, also=(None,)),
        "accumulate_grad_batches": COUNT,
    },
    "lightning.pytorch.callbacks.ModelCheckpoint": {
        "save_top_k": Range(0, kind=int, also=(-1,), note="all"),
        "every_n_train_steps": Range(0, kind=int, also=(None,)),
        "every_n_epochs": Range(0, kind=int, also=(None,)),
    },
    "torch.optim.AdamW": {
        "lr": POSITIVE,
        "betas": Range(0, 1, high_open=True, length=2),
        "eps": POSITIVE,
        "weight_decay": Range(0),
    },
    "llmexp.models.gpt.GPTConfig": _MODEL,
    "llmexp.models.bert.BertConfig": _MODEL,
    "llmexp.models.t5.T5Config": _MODEL,
    "llmexp.tokenizer.TokenizerSpec": {"vocab_size": COUNT, "min_frequency": NONNEGATIVE},
    "llmexp.data.datamodule.CausalLMDataModule": _LOADER,
    "llmexp.data.classification.ClassificationDataModule": {**_LOADER, **_ROWS},
    "llmexp.data.sft.SFTDataModule": {**_LOADER, **_ROWS},
    "llmexp.data.preference.PreferenceDataModule": {**_LOADER, **_ROWS},
    "llmexp.data.shards_datamodule.ShardsDataModule": {
        **_LOADER,
        "samples_per_epoch": COUNT_OR_NULL,
        "weights": Range(0, low_open=True, length=0, also=(None,)),
    },
    "llmexp.data.pydocs.PydocsCorpus": {"val_fraction": OPEN_SHARE},
    "llmexp.data.text_files.TextFilesCorpus": {"val_fraction": OPEN_SHARE, "chunk_chars": NONNEGATIVE},
    "llmexp.data.collators.MaskedLMCollator": {
        "mask_prob": OPEN_SHARE,
        "replace_with_mask": SHARE,
        "replace_with_random": SHARE,
    },
    "llmexp.data.collators.SpanCorruptionCollator": {"noise_density": OPEN_SHARE, "mean_span_length": Range(1)},
    "llmexp.finetune.adapters.Freeze": {"layers": NONNEGATIVE},
    "llmexp.finetune.adapters.LoRA": {"r": COUNT, "alpha": POSITIVE, "dropout": DROPOUT},
    "llmexp.tasks.classification.ClassificationTask": {"classifier_dropout": DROPOUT},
    "llmexp.tasks.dpo.DPOTask": {"beta": POSITIVE},
    "llmexp.training.schedules.warmup_cosine": {"warmup_steps": NONNEGATIVE, "min_lr_ratio": SHARE},
    "llmexp.training.schedules.warmup_constant": {"warmup_steps": NONNEGATIVE},
    "llmexp.training.strategies.deepspeed": {"stage": Range(1, 3, kind=int), "logging_batch_size_per_gpu": COUNT},
    "llmexp.training.strategies.fsdp": {"devices": COUNT, "num_nodes": COUNT},
    "llmexp.training.strategies.fsdp2": {"tensor_parallel_size": COUNT, "data_parallel_size": COUNT},
    "llmexp.training.callbacks.guards.DivergenceGuard": {
        "spike_sigmas": POSITIVE,
        "spike_window": COUNT,
        "min_history": Range(2, kind=int),
        "max_rollbacks": NONNEGATIVE,
        "max_skipped_share": SHARE,
    },
    "llmexp.training.callbacks.periodic_eval.PeriodicEval": {
        "every_n_steps": COUNT,
        "batch_size": COUNT,
        "limit": COUNT_OR_NULL,
        "num_fewshot": NONNEGATIVE,
        "perplexity_max_documents": COUNT_OR_NULL,
    },
    "llmexp.training.callbacks.progress.progress_bar": {"refresh_rate": NONNEGATIVE, "log_every": COUNT},
    "llmexp.training.callbacks.resume_checkpoint.ResumeCheckpoint": {"every_n_train_steps": COUNT, "keep_last": COUNT},
    "llmexp.training.callbacks.samples.SampleGeneration": {**SAMPLING, "count": COUNT},
    "llmexp.training.callbacks.throughput.ThroughputMonitor": {"window": COUNT},
    "llmexp.training.metrics_history.ResumableCSVLogger": {"flush_logs_every_n_steps": COUNT},
    "llmexp.prepare.cleaning.CleanConfig": {
        **_CLEAN,
        "max_mean_word_length": POSITIVE,
        "min_mean_word_length": Range(0),
        "max_words": COUNT,
        "min_words": NONNEGATIVE,
        "min_stop_words": NONNEGATIVE,
        "min_line_words": NONNEGATIVE,
    },
    "llmexp.prepare.packing.PackConfig": {"shard_tokens": COUNT, "batch_docs": COUNT},
    "llmexp.prepare.decontam.DecontamConfig": {"ngram": COUNT},
    "llmexp.prepare.executors.LocalExecutor": {"num_workers": NONNEGATIVE},
    "llmexp.prepare.executors.SlurmExecutor": {
        "tasks": COUNT,
        "cpus_per_task": COUNT,
        "mem_gb": POSITIVE,
        "timeout_min": COUNT,
        "max_retries": NONNEGATIVE,
        "poll_s": POSITIVE,
    },
    "llmexp.prepare.sources.FileSource": {
        "chunk_chars": NONNEGATIVE,
        "max_line_bytes": COUNT,
        "unit_bytes": COUNT,
        "weight": POSITIVE,
    },
    "llmexp.prepare.sources.HFSource": {"rows_per_unit": COUNT, "max_line_bytes": COUNT, "weight": POSITIVE},
    "llmexp.prepare.sources.PydocsSource": {"weight": POSITIVE},
}

BY_PATH: dict[str, Declared] = {
    "seed": SEED,
    "num_samples": COUNT,
    **SAMPLING,
    **{f"generation.{name}": declared for name, declared in SAMPLING.items()},
    "num_workers": NONNEGATIVE,
    "val_fraction": DROPOUT,
    "serve.port": Range(0, 65535, kind=int),
    "serve.max_batch_size": COUNT,
    "serve.max_wait_ms": Range(0),
    "serve.max_tokens_limit": COUNT,
    "serve.max_body_bytes": COUNT,
    "serve.max_connections": COUNT,
    "serve.request_timeout_s": POSITIVE,
    "serve.cpu_threads": COUNT_OR_NULL,
    "serve.arena.max_tokens": COUNT,
    "min_rating": Range(1, 5, kind=int),  # llmexp-feedback: ratings are 1 to 5
    "eval.limit": COUNT_OR_NULL,
    "eval.limit_batches": BATCHES,
    "eval.num_fewshot": NONNEGATIVE,
    "eval.batch_size": COUNT,
    "eval.seed": SEED,
    "eval.max_new_tokens": COUNT,
    "eval.perplexity_max_documents": COUNT_OR_NULL,
    "eval.code_samples": COUNT,
    "eval.code_k": Range(1, kind=int, length=0),
    "eval.code_temperature": SAMPLING["temperature"],
    "eval.code_max_new_tokens": COUNT,
    "eval.code_timeout_s": POSITIVE,
    "eval.code_memory_mb": COUNT,
    "batch_size_finder.start": COUNT,
    "batch_size_finder.max_size": COUNT,
    "batch_size_finder.steps": COUNT,
    "batch_size_finder.tolerance": DROPOUT,
    "preflight.memory_fraction": Range(0, 1, low_open=True),
    "preflight.mfu": Range(0, 1, low_open=True),
    "clean.max_duplicate_ngram_char_fraction.*": SHARE,
    "clean.max_top_ngram_char_fraction.*": SHARE,
    "dedup.near.threshold": Range(0, 1, low_open=True),
    "dedup.near.num_perm": COUNT,
    "dedup.near.shingle_size": COUNT,
    "dedup.near.bands": COUNT_OR_NULL,
    "dedup.near.rows": COUNT_OR_NULL,
    "dedup.near.seed": SEED,
}


def for_target(target: str, argument: str) -> Declared | None:
    return BY_TARGET.get(target, {}).get(argument)


def for_path(path: str) -> Declared | None:
    found = BY_PATH.get(path)
    if found is None:
        found = next(
            (r for pattern, r in BY_PATH.items() if "*" in pattern and fnmatch.fnmatchcase(path, pattern)), None
        )
    return found
