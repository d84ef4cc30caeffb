"""`llmexp-prepare`: see `llmexp-prepare --help` (llmexp.cli.entry_points)."""

from llmexp.cli.app import run


def main() -> None:
    run("llmexp-prepare")


if __name__ == "__main__":
    main()
