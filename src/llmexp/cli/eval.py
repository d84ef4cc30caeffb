"""`llmexp-eval`: see `llmexp-eval --help` (llmexp.cli.entry_points)."""

from llmexp.cli.app import run


def main() -> None:
    run("llmexp-eval")


if __name__ == "__main__":
    main()
