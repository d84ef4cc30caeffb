"""`llmexp-prepare`: turn raw text into cleaned, deduplicated, tokenised shards (conf/prepare.yaml)."""

from llmexp.cli.app import run_app
from llmexp.prepare.pipeline import prepare_from_config


def main() -> None:
    run_app("prepare", prepare_from_config)


if __name__ == "__main__":
    main()
