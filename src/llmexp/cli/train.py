"""`llmexp-train`: pretrain a model as configured by conf/train.yaml and the command line."""

from llmexp.cli.app import run_app
from llmexp.training.run import train


def main() -> None:
    run_app("train", train, preflight=True)


if __name__ == "__main__":
    main()
