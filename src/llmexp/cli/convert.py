"""`llmexp-convert`: see `llmexp-convert --help` (llmexp.cli.entry_points)."""

from llmexp.cli.app import run


def main() -> None:
    run("llmexp-convert")


if __name__ == "__main__":
    main()
