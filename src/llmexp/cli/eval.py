"""`llmexp-eval`: evaluate a checkpoint on the tasks of conf/evaluate.yaml's `eval` option."""

from llmexp.cli.app import run_app
from llmexp.evaluation.run import evaluate


def main() -> None:
    run_app("evaluate", evaluate)


if __name__ == "__main__":
    main()
