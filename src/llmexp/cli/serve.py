"""`llmexp-serve`: an OpenAI-compatible HTTP server for a checkpoint (conf/serve.yaml)."""

from llmexp.cli.app import run_app
from llmexp.serving.server import serve


def main() -> None:
    run_app("serve", serve)


if __name__ == "__main__":
    main()
