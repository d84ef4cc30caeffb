#!/usr/bin/env bash
# Optuna TPE search over learning rate, weight decay and warmup (conf/hparams_search/optuna.yaml), median pruning.
#   sweeps/optuna_tpe.sh                                                  # here, one trial after another
#   sweeps/optuna_tpe.sh hydra/launcher=slurm hydra.sweeper.n_jobs=4 --preflight   # 4 trials at a time on SLURM
#   sweeps/optuna_tpe.sh sweep.resume=outputs/sweeps/<name>              # continue a killed sweep
# The study is <sweep folder>/optuna.journal; trials.json and best_trial.json (with a one-line re-run command) sit beside.
set -euo pipefail
exec llmexp-train -m hparams_search=optuna "$@"
