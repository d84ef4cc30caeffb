#!/usr/bin/env bash
# Grid over learning rate x batch size as a Hydra multirun (conf/hparams_search/grid_lr_batch.yaml).
#   sweeps/grid_lr_batch.sh                                  # here, one run after another
#   sweeps/grid_lr_batch.sh hydra/launcher=slurm hydra.launcher.partition=gpu trainer.devices=1
# Any extra argument is passed on to llmexp-train. The summary is <sweep folder>/summary.md.
set -euo pipefail
exec llmexp-train -m hparams_search=grid_lr_batch "$@"
