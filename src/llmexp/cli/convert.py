"""`llmexp-convert`: consolidate a sharded FSDP/fsdp2/DeepSpeed checkpoint folder into one file."""

from llmexp.artifacts.consolidate import convert_checkpoint
from llmexp.cli.app import run_app


def main() -> None:
    run_app("convert", convert_checkpoint)


if __name__ == "__main__":
    main()
