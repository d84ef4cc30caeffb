#!/usr/bin/env bash
# Optuna TPE search with asynchronous successive halving: many trials start, only the best third go on at each rung.
# Suits SLURM with several trials at once (hydra.sweeper.n_jobs). Same options as sweeps/optuna_tpe.sh.
set -euo pipefail
exec llmexp-train -m hparams_search=optuna sweep/pruner=successive_halving hydra.sweeper.n_trials=27 "$@"
