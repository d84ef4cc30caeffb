"""`llmexp-generate`: see `llmexp-generate --help` (llmexp.cli.entry_points)."""

from llmexp.cli.app import run


def main() -> None:
    run("llmexp-generate")


if __name__ == "__main__":
    main()
