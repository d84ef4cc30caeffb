"""Read a W&B offline run back through wandb's own reader (`wandb leet inspect`, wandb-core's reader of its
transaction log), so tests check what W&B itself will upload, not what we think we wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WANDB = Path(sys.executable).parent / "wandb"


@dataclass
class WandbRun:
    run: dict[str, Any]  # the run record: run_id, project, run_group, job_type, tags, display_name
    state: dict[str, Any]  # `--summary`: config, summary, tags, state
    records: list[dict[str, Any]]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [r[kind] for r in self.records if r["type"] == kind]


def _inspect(path: Path, *flags: str) -> str:
    command = [str(WANDB), "leet", "inspect", "--json", *flags, str(path)]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=120).stdout


def read_wandb_run(run_dir: Path) -> WandbRun:
    """`run_dir`: an offline-run-* folder."""
    records = [json.loads(line) for line in _inspect(run_dir).splitlines() if line.strip()]
    (run,) = [r["run"] for r in records if r["type"] == "run"]
    return WandbRun(run=run, state=json.loads(_inspect(run_dir, "--summary")), records=records)
