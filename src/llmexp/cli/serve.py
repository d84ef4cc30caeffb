"""`llmexp-serve`: see `llmexp-serve --help` (llmexp.cli.entry_points)."""

from llmexp.cli.app import run


def main() -> None:
    run("llmexp-serve")


if __name__ == "__main__":
    main()
