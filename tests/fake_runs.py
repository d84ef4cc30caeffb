"""Run folders as llmexp-train leaves them (overrides, metrics.csv, final metrics, provenance, samples), written
directly, so report tests can compare many runs without training them."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import yaml


def write_run(
    folder: Path,
    overrides: list[str],
    final_loss: float,
    steps: int = 200,
    val_every: int = 50,
    tokenizer: str = "tok-a",
    bytes_per_token: float = 3.0,
) -> Path:
    """A run whose loss decays to `final_loss`; its final validation repeats the last periodic one one step later
    (what Lightning logs), the flat hook the report must not draw."""
    (folder / ".hydra").mkdir(parents=True, exist_ok=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    loss = lambda step: final_loss + 4.0 * math.exp(-step / (steps / 4))  # noqa: E731
    bpb = lambda value: value / math.log(2) / bytes_per_token  # noqa: E731
    rows = [{"step": s, "train/loss": loss(s) + 0.05 * math.sin(s)} for s in range(0, steps, 5)]
    rows += [
        {"step": s - 1, "val/loss": loss(s), "val/bpb": bpb(loss(s))} for s in range(val_every, steps + 1, val_every)
    ]
    rows.append({"step": steps, "val/loss": loss(steps), "val/bpb": bpb(loss(steps))})
    with (folder / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["step", "train/loss", "val/loss", "val/bpb"])
        writer.writeheader()
        writer.writerows(rows)
    final = {"val/loss": loss(steps), "val/bpb": bpb(loss(steps)), "step": steps}
    (folder / "final_metrics.json").write_text(json.dumps(final))
    (folder / "provenance.json").write_text(json.dumps({"tokenizer_sha256": tokenizer}))
    (folder / "samples.txt").write_text(f"The for statement {folder.name}\n" + "-" * 60 + "\nclass Foo:\n")
    (folder / "config.yaml").write_text("model:\n  n_layer: 2\n")
    return folder


def write_sweep(folder: Path, n: int) -> list[Path]:
    """`n` trials of a learning-rate x warmup sweep in folder/0 .. folder/<n-1>."""
    runs = []
    for i in range(n):
        lr, warmup = 10 ** (-4 + 2 * i / max(n - 1, 1)), (20, 50, 100)[i % 3]
        final = 2.0 + abs(math.log10(lr) + 3) + warmup / 400
        runs.append(
            write_run(
                folder / str(i),
                ["experiment=smoke", f"optimizer.lr={lr:.2e}", f"scheduler.warmup_steps={warmup}"],
                final,
            )
        )
    return runs
