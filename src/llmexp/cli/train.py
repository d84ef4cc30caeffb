"""`llmexp-train`: pretrain a model as configured by conf/train.yaml and the command line.

Returns the final value of `optimized_metric` (val/loss by default) to Hydra, for sweepers such as Optuna."""

from llmexp.cli.app import run_app
from llmexp.training.objective import train_objective


def main() -> None:
    run_app("train", train_objective, preflight=True)


if __name__ == "__main__":
    main()
