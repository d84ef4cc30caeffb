"""`llmexp-feedback`: see `llmexp-feedback --help` (llmexp.cli.entry_points)."""

from llmexp.cli.app import run


def main() -> None:
    run("llmexp-feedback")


if __name__ == "__main__":
    main()
