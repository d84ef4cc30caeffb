"""Resume is one command: `llmexp-train resume=<run folder>` (or the older form, `ckpt_path=<a checkpoint inside a
run folder>`) continues the run in its own folder with its own settings.

The run's own command-line overrides (its `.hydra/overrides.yaml`) are replayed, the new ones go on top, the run
folder is pinned and the newest valid checkpoint in it is taken (`ckpt_path=auto`, unless a checkpoint was named).
An override that would change the model or tokenizer the checkpoint holds is refused; one that changes the data or
the process layout is allowed and named in a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from llmexp.errors import ConfigError

RUN_OVERRIDES = Path(".hydra") / "overrides.yaml"
# What the checkpoint holds: a new value cannot work with it (start a new run with init_from= instead).
FIXED = ("model", "tokenizer", "task", "finetune")
# What a resumed run may change, with a word: the data it trains on, and the process layout (the global batch is kept:
# llmexp.training.elastic).
CHANGED = ("data", "experiment", "trainer.devices", "trainer.num_nodes", "trainer.accumulate_grad_batches")
LAYOUT = ("trainer.devices", "trainer.num_nodes", "trainer.accumulate_grad_batches", "data.batch_size")
# Settings of one invocation, never replayed; the folder and the checkpoint are pinned by the resume itself.
NOT_REPLAYED = ("hydra", "ckpt_path", "resume")
PINNED = ("hydra.run.dir", "ckpt_path", "resume")


@dataclass
class ResumePlan:
    argv: list[str]  # the command line to run
    run_dir: Path | None = None
    warnings: list[str] = field(default_factory=list)


def key_of(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _covers(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(f"{p}.") or key.startswith(f"{p}/") for p in prefixes)


def run_folder_of(path: Path) -> Path | None:
    """The run folder holding `path` (the nearest parent with .hydra/overrides.yaml), or None."""
    for folder in (path, *path.parents):
        if (folder / RUN_OVERRIDES).is_file():
            return folder
    return None


def _named_run(overrides: list[str]) -> tuple[Path | None, str | None]:
    """(run folder, checkpoint the user named) from `resume=` or a `ckpt_path=` inside a run folder."""
    for override in overrides:
        key, _, value = override.partition("=")
        if key == "resume":
            folder = Path(value).expanduser()
            if not (folder / RUN_OVERRIDES).is_file():
                raise ConfigError(
                    f"resume={value}: not a run folder (no {RUN_OVERRIDES}); give outputs/runs/<date>/<time>"
                )
            return folder, None
    for override in overrides:
        key, _, value = override.partition("=")
        if key == "ckpt_path" and value not in ("", "auto", "null") and Path(value).expanduser().exists():
            folder = run_folder_of(Path(value).expanduser().resolve())
            if folder is not None:
                return folder, value
    return None, None


def resume_command_line(argv: list[str]) -> ResumePlan:
    """The command line that continues the run named in `argv`, or `argv` unchanged when it names none."""
    flags = [a for a in argv if a.startswith("-")]
    overrides = [a for a in argv if not a.startswith("-")]
    folder, checkpoint = _named_run(overrides)
    if folder is None:
        return ResumePlan(argv)
    if {"-m", "--multirun"} & set(flags):
        raise ConfigError("resume: continue one run at a time (without -m); a killed sweep resumes by re-running it")
    recorded = yaml.safe_load((folder / RUN_OVERRIDES).read_text()) or []
    original = [o for o in recorded if not _covers(key_of(o), NOT_REPLAYED)]
    new = [o for o in overrides if not _covers(key_of(o), PINNED)]
    before = {key_of(o): o for o in original}
    warnings = [
        f"the run continues in its own folder {folder}, not {o.split('=', 1)[1]}"
        for o in overrides
        if key_of(o) == "hydra.run.dir" and Path(o.split("=", 1)[1]).resolve() != folder.resolve()
    ]
    for override in new:
        key = key_of(override)
        if before.get(key) == override:
            continue
        was = before.get(key, "the run's default")
        if _covers(key, FIXED):
            raise ConfigError(
                f"resume: {override} would change what the checkpoint holds (the run has {was}); start a new run "
                f"with init_from=<checkpoint> instead"
            )
        if _covers(key, LAYOUT):
            warnings.append(
                f"resuming {folder} with {override} (the run had {was}): a new process layout; the global batch and "
                "the sample order are kept"
            )
        elif _covers(key, CHANGED):
            warnings.append(f"resuming {folder} with {override} (the run had {was}): the data it trains on changes")
    replaced = {key_of(o) for o in new}
    kept = [o for o in original if not _covers(key_of(o), tuple(replaced))]
    # `~key` of something only the run's own overrides added: dropping those overrides is the whole deletion.
    new = [o for o in new if not (o.startswith("~") and any(_covers(key_of(r), (key_of(o),)) for r in original))]
    pinned = [f"hydra.run.dir={folder}", f"ckpt_path={checkpoint}" if checkpoint else "ckpt_path=auto"]
    return ResumePlan([*flags, *kept, *new, *pinned], folder, warnings)
