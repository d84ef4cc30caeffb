"""The safe-load policy on every format: crafted sharded folders execute nothing under `llmexp-convert` or on resume,
real ones pass, transformers directories are read as safetensors only, and a scan keeps new unpickling paths out."""

from __future__ import annotations

import ast
import pickle
import re
import shutil
import warnings
from pathlib import Path

import pytest
import safetensors.torch
import torch
import torch.distributed.checkpoint as dcp

from command_line import run_command
from llmexp.artifacts.sharded import read_sharded_metadata
from llmexp.cli import convert
from llmexp.errors import CheckpointError

SRC = Path(__file__).resolve().parents[2] / "src"
# A real ZeRO-2 checkpoint of a two-layer model, written by DeepSpeed 0.19.8 on this CPU (deepspeed.initialize with
# dist_backend=gloo, one step, engine.save_checkpoint with client_state {"llmexp": {"a": 1}, "global_step": 1}).
DEEPSPEED_ASSET = Path(__file__).resolve().parents[1] / "assets" / "deepspeed_zero2"


class Payload:
    """Unpickling this runs code: it writes the file named by `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def _dcp_folder(folder: Path, extra: dict | None = None) -> Path:
    """A torch.distributed.checkpoint folder as Lightning's fsdp/fsdp2 strategies write it (shards, .metadata,
    meta.pt with the llmexp metadata)."""
    state = {
        "state_dict": {"model.w": torch.ones(4, 4)},
        "optimizer_0": {"param_groups": [{"lr": 0.1}]},
        **(extra or {}),
    }
    with warnings.catch_warnings():  # "assuming the intent is to save in a single process": it is
        warnings.simplefilter("ignore", UserWarning)
        dcp.save(state, checkpoint_id=folder, no_dist=True)
    torch.save({"llmexp": {"model_config": {}}, "global_step": 3}, folder / "meta.pt")
    return folder


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


@pytest.fixture
def evil_metadata(tmp_path: Path, marker: Path) -> Path:
    folder = _dcp_folder(tmp_path / "dcp" / "last.ckpt")
    metadata = pickle.loads((folder / ".metadata").read_bytes())
    metadata.planner_data = {"payload": Payload(marker)}
    (folder / ".metadata").write_bytes(pickle.dumps(metadata))
    return folder


@pytest.fixture
def evil_item(tmp_path: Path, marker: Path) -> Path:
    """The .metadata is clean; one non-tensor item of a shard is the pickle (torch unpickles those fully)."""
    return _dcp_folder(tmp_path / "dcp" / "last.ckpt", {"optimizer_1": {"payload": Payload(marker)}})


@pytest.fixture
def evil_deepspeed(tmp_path: Path, marker: Path) -> Path:
    folder = shutil.copytree(DEEPSPEED_ASSET, tmp_path / "ds" / "last.ckpt")
    optim = folder / "global_step1" / "zero_pp_rank_0_mp_rank_00_optim_states.pt"
    torch.save({"optimizer_state_dict": {"zero_stage": 2, "loss_scaler": Payload(marker)}}, optim)
    return folder


def test_real_sharded_folders_pass_the_policy(tmp_path):
    assert read_sharded_metadata(DEEPSPEED_ASSET)["llmexp"] == {"a": 1}
    assert read_sharded_metadata(_dcp_folder(tmp_path / "dcp"))["global_step"] == 3


@pytest.mark.parametrize(
    ("folder", "refusal"),
    [
        ("evil_metadata", r"\.metadata cannot be read safely \(UnpicklingError: refusing to load builtins\.exec\)"),
        ("evil_item", r"item optimizer_1\.payload of __0_0\.distcp: cannot be read safely"),
        ("evil_deepspeed", r"global_step1/zero_pp_rank_0_mp_rank_00_optim_states\.pt: cannot be read safely"),
    ],
)
def test_a_crafted_sharded_folder_runs_nothing_under_llmexp_convert(
    folder, refusal, request, marker, monkeypatch, capsys
):
    path = request.getfixturevalue(folder)
    code, err = run_command(convert.main, ["llmexp-convert", f"ckpt_path={path}"], monkeypatch, capsys)
    assert not marker.exists()  # nothing in the folder ran
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert re.search(refusal, err), err
    assert not path.with_name("last.consolidated.ckpt").exists()


@pytest.mark.parametrize(
    ("folder", "strategy"), [("evil_metadata", "fsdp2"), ("evil_item", "fsdp2"), ("evil_deepspeed", "deepspeed_zero2")]
)
def test_a_crafted_sharded_folder_runs_nothing_on_resume(folder, strategy, request, marker, make_cfg, tmp_path):
    from llmexp.training.run import train

    path = request.getfixturevalue(folder)
    cfg = make_cfg("experiment=smoke", f"strategy={strategy}", f"ckpt_path={path}", "trainer.accelerator=cpu")
    try:
        with pytest.raises(CheckpointError, match="cannot be read safely"):
            train(cfg)
    finally:
        assert not marker.exists()  # nothing in the folder ran, whatever train() did
    assert not (tmp_path / "run").exists()  # refused before any work


def test_transformers_weights_are_read_as_safetensors_only(tmp_path):
    from llmexp.artifacts.hf_dir import load_hf_dir, save_hf_dir
    from llmexp.models.gpt import GPTConfig

    model = GPTConfig(vocab_size=64, n_layer=1, n_head=2, n_embd=16, max_seq_len=16).build()
    save_hf_dir(model, None, tmp_path / "hf")
    weights = safetensors.torch.load_file(tmp_path / "hf" / "model.safetensors")
    (tmp_path / "hf" / "model.safetensors").unlink()
    torch.save(weights, tmp_path / "hf" / "pytorch_model.bin")  # what older transformers wrote: a pickle
    with pytest.raises(CheckpointError, match=r"no \*\.safetensors weights; llmexp reads transformers weights as"):
        load_hf_dir(tmp_path / "hf")
    loaded, _ = load_hf_dir(tmp_path / "hf", pickled_weights=True)  # when told, transformers' own loader reads it
    assert torch.equal(loaded.state_dict()["wte.weight"], model.state_dict()["wte.weight"])


# Library calls that unpickle what a folder holds: allowed only where the folder was checked just before.
UNPICKLING_LIBRARY_CALLS = {
    "_load_distributed_checkpoint": "llmexp/artifacts/consolidate.py",
    "convert_zero_checkpoint_to_fp32_state_dict": "llmexp/artifacts/consolidate.py",
}


def _unsafe_calls(tree: ast.AST, where: str) -> list[str]:
    found = []
    for node in ast.walk(tree):
        bases = [ast.unparse(b) for b in node.bases] if isinstance(node, ast.ClassDef) else []
        if any("Unpickler" in b for b in bases) and where != "llmexp/artifacts/safe_load.py":
            found.append(f"class {node.name}({', '.join(bases)})")
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
        last, first = name.split(".")[-1], name.split(".")[0]
        if last == "load" and first in ("torch", "serialization") and keywords.get("weights_only") != "True":
            found.append(name)
        if last in ("loads", "load", "Unpickler") and first in ("pickle", "_pickle", "dill", "cloudpickle", "joblib"):
            found.append(name)
        if last in ("unsafe_load", "full_load") or (first == "marshal" and last.startswith("load")):
            found.append(name)
        saving = last == "save_checkpoint"  # Lightning's save: weights_only=False means "everything", not a load
        if keywords.get("weights_only") == "False" and not saving:
            found.append(name)
        if "True" in (keywords.get("allow_pickle"), keywords.get("trust_remote_code")):
            found.append(name)
        if last == "from_pretrained" and "use_safetensors" not in keywords and "Config" not in name:
            found.append(f"{name} without use_safetensors")
        if last in UNPICKLING_LIBRARY_CALLS and UNPICKLING_LIBRARY_CALLS[last] != where:
            found.append(name)
    return found


def test_no_load_path_in_the_source_unpickles_arbitrary_objects():
    unsafe = {}
    for path in SRC.rglob("*.py"):
        where = str(path.relative_to(SRC))
        calls = _unsafe_calls(ast.parse(path.read_text()), where)
        if calls:
            unsafe[where] = calls
    assert not unsafe


@pytest.mark.parametrize(
    "line",
    [
        "state = torch.load(path)",
        "state = torch.load(path, weights_only=False)",
        "state = pickle.load(handle)",
        "state = pickle.Unpickler(handle).load()",
        "class Loose(pickle.Unpickler): pass",
        "model = AutoModel.from_pretrained(path)",
        "state = _load_distributed_checkpoint(path)",
        "data = numpy.load(path, allow_pickle=True)",
    ],
)
def test_the_scan_finds_each_kind_of_unsafe_load(line):
    assert _unsafe_calls(ast.parse(line), "llmexp/somewhere.py")
