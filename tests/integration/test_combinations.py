"""Every combination the configs allow works, or is refused in one line before any work. The cases are generated
from the registries (tests/combinations.py): a new model family, objective or recipe joins them by being declared.

Each run uses the **default** callbacks group (samples, checkpoints, guards, progress, throughput, loss curve), so
a callback that cannot handle a family, objective or strategy fails here, not in a user's run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hydra.utils import get_class

from combinations import CONF, data_overrides, objectives, recipe, supported, tiny_model, unsupported, write_data
from llmexp.artifacts.hf_dir import save_hf_dir
from llmexp.artifacts.inference import save_inference_checkpoint
from llmexp.errors import ConfigError
from llmexp.models.generation import SamplingConfig, generate
from llmexp.models.spec import FAMILIES, build_model, family_of
from llmexp.tokenizer import Tokenizer
from llmexp.training.run import train
from server_process import running_server

TESTS = Path(__file__).resolve().parents[1]
FAST = (
    "callbacks=default",
    "trainer.accelerator=cpu",
    "trainer.val_check_interval=2",
    "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "eval.limit_batches=1",
    "callbacks.periodic_checkpoint.every_n_train_steps=2",
    "data.block_size=64",
    "data.batch_size=4",
    "data.val_batch_size=4",
    "scheduler.warmup_steps=1",
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_data(tmp_path_factory.mktemp("combination-data"))


def overrides(family: str, objective: str, files: dict[str, Path], steps: int) -> list[str]:
    return [
        f"experiment={recipe(objective)}",
        f"model={tiny_model(family)}",
        *FAST,
        f"trainer.max_steps={steps}",
        *data_overrides(objective, files),
    ]


def test_every_task_option_names_its_objective():
    """conf/task option names are the objectives FamilySpecs list (what the refusals name)."""
    assert objectives() == {name: name for name in objectives()}
    assert {o for spec in FAMILIES.values() for o in spec.objectives} <= set(objectives())


@pytest.mark.slow
@pytest.mark.parametrize(("family", "objective"), supported())
def test_trains_checkpoints_and_resumes_in_one_process(make_cfg, tmp_path, files, family, objective):
    first = train(make_cfg(*overrides(family, objective, files, steps=4), run_dir=tmp_path / "first"))
    assert first["step"] == 4
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert last.is_file()
    resumed = train(
        make_cfg(*overrides(family, objective, files, steps=6), f"ckpt_path={last}", run_dir=tmp_path / "second")
    )
    assert resumed["step"] == 6
    assert resumed["val/loss"] == resumed["val/loss"]  # finite, not NaN
    if FAMILIES[family].can_generate and objective != "classification":
        assert (tmp_path / "first" / "samples.txt").read_text().strip()  # the default samples callback ran


@pytest.mark.parametrize(("family", "objective"), unsupported())
def test_an_objective_the_family_lacks_is_refused_before_any_work(make_cfg, tmp_path, files, family, objective):
    cfg = make_cfg(*overrides(family, objective, files, steps=2))
    cfg.paths.cache_dir = str(tmp_path / "fresh-cache")
    with pytest.raises(ConfigError) as info:
        train(cfg)
    message = str(info.value)
    assert "\n" not in message and f"model family {family!r}" in message
    assert not (tmp_path / "fresh-cache").exists() and not (tmp_path / "run").exists()  # no tokenizer, no run folder


def cli(run: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "llmexp.cli.train", *args, f"hydra.run.dir={run}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


def distributed_cases() -> list[tuple[str, str, str]]:
    """Each family's first objective under ddp and fsdp2, and packed SFT under fsdp2 (DTensor inputs)."""
    cases = [(family, spec.objectives[0], s) for family, spec in FAMILIES.items() for s in ("ddp", "fsdp2")]
    return [*cases, ("gpt", "sft", "fsdp2")]


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize(("family", "objective", "strategy"), distributed_cases())
def test_two_processes_train_with_the_default_callbacks(tmp_path, cache_dir, files, family, objective, strategy):
    """Two gloo processes finish (samples, final validation and all) and write a checkpoint; fsdp2 resumes from its
    sharded folder."""
    common = [*overrides(family, objective, files, steps=4), f"strategy={strategy}", "trainer.devices=2"]
    common.append(f"paths.cache_dir={cache_dir}")
    result = cli(tmp_path / "first", *common)
    assert result.returncode == 0, result.stderr[-4000:]
    final = json.loads((tmp_path / "first" / "final_metrics.json").read_text())
    assert final["step"] == 4
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert last.is_dir() if strategy == "fsdp2" else last.is_file()
    if FAMILIES[family].can_generate:
        assert (tmp_path / "first" / "samples.txt").read_text().strip()
    if strategy == "fsdp2" and objective == FAMILIES[family].objectives[0]:
        steps = [a for a in common if not a.startswith("trainer.max_steps=")]
        result = cli(tmp_path / "second", *steps, "trainer.max_steps=6", f"ckpt_path={last}")
        assert result.returncode == 0, result.stderr[-4000:]
        # A checkpoint inside a run folder continues that run, in that folder.
        assert json.loads((tmp_path / "first" / "final_metrics.json").read_text())["step"] == 6


ASSETS = TESTS / "assets"


def tiny_models() -> list[tuple[str, str]]:
    """(family, model option) for every conf/model/*_tiny.yaml: each is a shape users train."""
    found = []
    for path in sorted((CONF / "model").glob("*_tiny.yaml")):
        found.append((family_of(get_class(yaml.safe_load(path.read_text())["_target_"])).name, path.stem))
    assert {f for f, _ in found} == set(FAMILIES), "every family needs a conf/model/<name>_tiny.yaml"
    return found


def tiny_model_of(option: str, vocab_size: int, **fields):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    node = OmegaConf.load(CONF / "model" / f"{option}.yaml")
    torch.manual_seed(0)
    return build_model(instantiate(node, vocab_size=vocab_size, **fields)).eval()


def logits_of(model, ids: torch.Tensor) -> torch.Tensor:
    if family_of(model).encoder_decoder:
        return model(ids, decoder_input_ids=ids[:, :5])
    return model(ids)


@pytest.mark.parametrize(("family", "option"), tiny_models())
def test_every_family_exports_to_transformers_with_the_same_logits(tmp_path, family, option):
    transformers = pytest.importorskip("transformers")
    tokenizer = Tokenizer.load(ASSETS / "tokenizer.json")
    model = tiny_model_of(option, tokenizer.vocab_size)
    save_hf_dir(model, tokenizer, tmp_path / "hf")
    adapter = FAMILIES[family].hf_adapter(model.config)
    hf = getattr(transformers, adapter.hf_class).from_pretrained(tmp_path / "hf", local_files_only=True).eval()
    ids = torch.randint(0, tokenizer.vocab_size, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = logits_of(model, ids)
        theirs = (
            hf(input_ids=ids, decoder_input_ids=ids[:, :5]).logits if adapter.model_type == "t5" else hf(ids).logits
        )
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def serving_models() -> list[tuple[str, str]]:
    """The first tiny model of every family that generates."""
    first: dict[str, str] = {}
    for family, option in tiny_models():
        first.setdefault(family, option)
    return [(f, o) for f, o in first.items() if FAMILIES[f].can_generate]


@pytest.mark.slow
@pytest.mark.parametrize(("family", "option"), serving_models())
def test_every_generating_family_serves_a_completion_and_a_stream(tmp_path, family, option):
    """The official OpenAI client against llmexp-serve: a completion and a streamed completion, each equal to the
    one decoding loop run in this process."""
    openai = pytest.importorskip("openai")
    tokenizer = Tokenizer.load(ASSETS / "tokenizer.json")
    model = tiny_model_of(option, tokenizer.vocab_size)
    with torch.no_grad():  # large weights: clear argmax margins, so greedy answers are unambiguous
        for param in model.parameters():
            param.mul_(8.0 if param.dim() > 1 else 1.0)
    checkpoint = save_inference_checkpoint(tmp_path / "tiny.ckpt", model, tokenizer, {})
    prompt = "The for statement"
    greedy = SamplingConfig(max_new_tokens=12, temperature=0)
    expected = tokenizer.decode(generate(model, [tokenizer.encode(prompt)], greedy, tokenizer.eos_id)[0])
    with running_server(checkpoint, tmp_path / "server.log") as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
        whole = client.completions.create(model="llmexp", prompt=prompt, max_tokens=12, temperature=0)
        assert whole.choices[0].text == expected
        stream = client.completions.create(model="llmexp", prompt=prompt, max_tokens=12, temperature=0, stream=True)
        assert "".join(chunk.choices[0].text for chunk in stream) == expected


@pytest.mark.parametrize("program", ["serve", "generate"])
@pytest.mark.parametrize("family", [f for f, spec in FAMILIES.items() if not spec.can_generate])
def test_a_family_that_does_not_generate_is_refused_at_start_up(tmp_path, family, program):
    tokenizer = Tokenizer.load(ASSETS / "tokenizer.json")
    option = next(o for f, o in tiny_models() if f == family)
    checkpoint = save_inference_checkpoint(
        tmp_path / "m.ckpt", tiny_model_of(option, tokenizer.vocab_size), tokenizer, {}
    )
    result = subprocess.run(
        [sys.executable, "-m", f"llmexp.cli.{program}", f"ckpt_path={checkpoint}", "device=cpu"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line and f"model family {family!r} does not generate text" in line, result.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_periodic_and_final_evals_run_on_the_full_model(tmp_path, cache_dir, strategy):
    """Evaluation during and after a two-process run (scoring and generation) runs on rank 0 with the full weights
    (gathered under fsdp2) while the other rank waits: no evaluation metric may wait for the other rank."""
    answers = tmp_path / "answers.jsonl"
    answers.write_text("\n".join(json.dumps({"prompt": f"Return a new {w}", "target": w}) for w in ("list", "dict")))
    run = tmp_path / "run"
    result = cli(
        run,
        "experiment=smoke",
        f"strategy={strategy}",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        "trainer.max_steps=4",
        f"paths.cache_dir={cache_dir}",
        "callbacks=eval",
        "callbacks.periodic_eval.every_n_steps=2",
        "callbacks.periodic_eval.perplexity_max_documents=4",
        "eval=generation",
        f"eval.tasks=[heldout,gen:{answers}]",
        "eval.perplexity_max_documents=4",
        "eval.max_new_tokens=4",
    )
    assert result.returncode == 0, result.stderr[-4000:]
    final = json.loads((run / "final_metrics.json").read_text())
    # gen:<file> is keyed by its file name: eval/answers/<metric>.
    assert any(k.startswith("eval/heldout/") for k in final) and any(k.startswith("eval/answers/") for k in final)
    logged = (run / "metrics.csv").read_text().splitlines()[0]
    assert "eval/heldout/" in logged  # the periodic evaluation reached the loggers
