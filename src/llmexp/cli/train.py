"""`llmexp-train`: see `llmexp-train --help` (llmexp.cli.entry_points)."""

from llmexp.cli.app import run


def main() -> None:
    run("llmexp-train")


if __name__ == "__main__":
    main()
