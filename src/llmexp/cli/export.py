"""`llmexp-export ckpt_path=... out=...`: write a checkpoint as a `transformers` model directory."""

from omegaconf import DictConfig

from llmexp.cli.app import run


def export(cfg: DictConfig) -> None:
    from llmexp.artifacts.hf_dir import export_checkpoint
    from llmexp.models.generation import SamplingConfig

    out = export_checkpoint(cfg.ckpt_path, cfg.out, SamplingConfig(**cfg.generation))
    print(f"Exported {cfg.ckpt_path} to {out} (load with transformers' AutoModel*.from_pretrained)")


def main() -> None:
    run("llmexp-export")


if __name__ == "__main__":
    main()
