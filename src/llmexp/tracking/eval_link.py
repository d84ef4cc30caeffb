"""Give an evaluation back to the W&B run of the training run it scored: `llmexp-eval ckpt_path=<run>/...` adds
`eval/<task>/<metric>` to that W&B run (same id) when the training run used W&B (<run>/wandb_run.json).
"""

from __future__ import annotations

import json
from pathlib import Path

from llmexp.tracking.wandb import LINK_FILE, has_wandb_credentials


def add_to_training_wandb_run(run_dir: Path, results: dict[str, float]) -> str | None:
    """Resume the training run's W&B run (same id; offline if it was, or without credentials here) and set
    `eval/<task>/<metric>`; return its id, None when the run did not use W&B. Offline, W&B writes a second folder
    for the same run; `wandb sync <run>/wandb/offline-run-*` uploads both into that one run."""
    link_file = run_dir / LINK_FILE
    if not link_file.is_file():
        return None
    import wandb

    link = json.loads(link_file.read_text())
    run = wandb.init(
        id=link["id"],
        project=link["project"],
        entity=link.get("entity"),
        resume="allow",
        mode="offline" if link.get("offline") or not has_wandb_credentials() else "online",
        dir=str(run_dir),
        settings=wandb.Settings(silent=True, x_disable_meta=True),
    )
    scores = {f"eval/{k}": v for k, v in results.items()}
    run.log(scores)
    run.summary.update(scores)
    run.finish()
    print(f"Added to the training run's W&B run {link['id']} (eval/* keys)")
    return link["id"]
