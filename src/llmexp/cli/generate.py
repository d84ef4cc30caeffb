"""`llmexp-generate`: sample text from a checkpoint."""

from llmexp.cli.app import run_app
from llmexp.serving.generate import generate_text


def main() -> None:
    run_app("generate", generate_text)


if __name__ == "__main__":
    main()
