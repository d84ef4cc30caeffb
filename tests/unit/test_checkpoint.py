"""Checkpoint files: atomic writes, the integrity digest, fallback past damaged files, retention, safe loading."""

from __future__ import annotations

import functools
import os
import struct
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from llmexp.artifacts.checkpoint import (
    AtomicCheckpointIO,
    atomic_save,
    newest_valid_checkpoint,
    read_checkpoint,
    resolve_ckpt_path,
)
from llmexp.artifacts.inference import load_for_inference
from llmexp.errors import CheckpointError
from llmexp.models.gpt import GPTConfig
from llmexp.tasks.causal_lm import CausalLMTask
from llmexp.tokenizer import Tokenizer, TokenizerSpec
from llmexp.tokenizer.trainers import load_pretrained
from llmexp.training.callbacks.resume_checkpoint import ResumeCheckpoint


def _checkpoint(step: int) -> dict:
    return {"llmexp": {"step": step}, "global_step": step, "state_dict": {"w": torch.full((64, 64), float(step))}}


def _save(path: Path, step: int, mtime: int) -> Path:
    AtomicCheckpointIO().save_checkpoint(_checkpoint(step), path)
    os.utime(path, ns=(mtime, mtime))
    return path


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    _save(tmp_path / "checkpoints" / "periodic-step000003.ckpt", 3, 1_000_000_000)
    _save(tmp_path / "checkpoints" / "periodic-step000006.ckpt", 6, 2_000_000_000)
    _save(tmp_path / "checkpoints" / "last.ckpt", 9, 3_000_000_000)
    return tmp_path


def test_auto_picks_the_newest_checkpoint(run_dir):
    assert resolve_ckpt_path("auto", run_dir) == str(run_dir / "checkpoints" / "last.ckpt")
    assert resolve_ckpt_path("auto", run_dir / "elsewhere") is None
    assert resolve_ckpt_path("x.ckpt", run_dir) == "x.ckpt"


def test_a_truncated_file_is_named_and_passed_over(run_dir, caplog):
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"last.ckpt: cannot be read safely, the file is truncated, corrupt"):
        read_checkpoint(last)
    assert newest_valid_checkpoint(run_dir) == run_dir / "checkpoints" / "periodic-step000006.ckpt"
    assert "skipping a checkpoint that cannot be resumed from" in caplog.text


def test_flipped_bytes_inside_a_tensor_fail_the_digest(run_dir):
    last = run_dir / "checkpoints" / "last.ckpt"
    data = bytearray(last.read_bytes())
    middle = data.find(b"\x00\x00\x10\x41")  # a float32 9.0 of the tensor's payload
    data[middle : middle + 4] = b"\x00\x00\x20\x41"
    last.write_bytes(bytes(data))
    assert torch.load(last, weights_only=True)["global_step"] == 9  # torch alone loads it without complaint
    with pytest.raises(CheckpointError, match="corrupt, its contents do not match the digest"):
        read_checkpoint(last)
    assert newest_valid_checkpoint(run_dir).name == "periodic-step000006.ckpt"


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(run_dir, monkeypatch):
    last = run_dir / "checkpoints" / "last.ckpt"

    def disk_full(obj, handle, *args, **kwargs):
        handle.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        atomic_save(_checkpoint(12), last)
    monkeypatch.undo()
    assert read_checkpoint(last)["global_step"] == 9
    assert sorted(p.name for p in last.parent.iterdir()) == [
        "last.ckpt",
        "periodic-step000003.ckpt",
        "periodic-step000006.ckpt",
    ]


def test_retention_keeps_the_last_n_step_checkpoints_and_last(tmp_path):
    L.seed_everything(0)
    model = GPTConfig(vocab_size=64, n_layer=1, n_head=2, n_embd=16, max_seq_len=16).build()
    task = CausalLMTask(model, functools.partial(torch.optim.AdamW, lr=1e-3))
    tokens = torch.randint(0, 64, (64, 17))
    data = DataLoader([{"input_ids": t[:-1], "labels": t[1:]} for t in tokens], batch_size=4)
    saver = ResumeCheckpoint(dirpath=tmp_path / "checkpoints", every_n_train_steps=2, keep_last=2)
    trainer = L.Trainer(
        max_steps=11,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[saver],
        plugins=[AtomicCheckpointIO()],
    )
    trainer.fit(task, train_dataloaders=data)
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert kept == ["last.ckpt", "periodic-step000008.ckpt", "periodic-step000010.ckpt"]
    assert read_checkpoint(tmp_path / "checkpoints" / "last.ckpt", require_metadata=False)["global_step"] == 11


class Payload:
    """Unpickling this runs code: it writes the file named by `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


@pytest.fixture
def malicious(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoints" / "evil.ckpt"
    path.parent.mkdir()
    torch.save({**_checkpoint(1), "payload": Payload(marker)}, path)
    return path, marker


def test_a_malicious_checkpoint_is_refused_on_every_load_path(malicious):
    path, marker = malicious
    loaders = [
        read_checkpoint,
        load_for_inference,
        AtomicCheckpointIO().load_checkpoint,  # what Trainer.fit(ckpt_path=...) reads with
    ]
    for load in loaders:
        with pytest.raises(CheckpointError, match="holds objects other than tensors and plain data"):
            load(path)
    assert newest_valid_checkpoint(path.parents[1]) is None
    assert not marker.exists()


def test_a_malicious_tokenizer_file_is_refused(malicious, tmp_path):
    path, marker = malicious
    tokenizer_file = tmp_path / "tokenizer.json"
    tokenizer_file.write_bytes(path.read_bytes())
    for load in (Tokenizer.load, load_pretrained):
        with pytest.raises(Exception, match=r"(?i)expected value|valid|error"):
            load(tokenizer_file)
    with pytest.raises(Exception):  # noqa: B017 (any refusal will do; the marker says whether code ran)
        TokenizerSpec(kind="pretrained", path=str(tokenizer_file)).train([])
    assert not marker.exists()


@pytest.mark.parametrize(
    ("stored", "flipped"),
    [
        (b"K\xb4", b"K\x14"),  # the data position 180 -> 20 (pickle BININT1)
        (b"G" + struct.pack(">d", 0.002), b"G" + struct.pack(">d", 3e-8)),  # a base learning rate (pickle BINFLOAT)
    ],
    ids=["data position", "base_lrs"],
)
def test_a_changed_value_outside_the_tensors_fails_the_digest(tmp_path, stored, flipped):
    path = tmp_path / "last.ckpt"
    state = {"CausalLMDataModule": {"position": 180}, "lr_schedulers": [{"base_lrs": [0.002]}]}
    AtomicCheckpointIO().save_checkpoint({**_checkpoint(9), **state}, path)
    data = path.read_bytes()
    assert data.count(stored) == 1
    path.write_bytes(data.replace(stored, flipped))
    changed = torch.load(path, weights_only=True)  # torch alone loads it, with a different run's state
    assert (
        changed["CausalLMDataModule"] != state["CausalLMDataModule"]
        or changed["lr_schedulers"] != state["lr_schedulers"]
    )
    with pytest.raises(CheckpointError, match="corrupt, its contents do not match the digest"):
        read_checkpoint(path)


def test_auto_refuses_a_run_folder_whose_checkpoints_are_all_damaged(run_dir):
    for path in (run_dir / "checkpoints").glob("*.ckpt"):
        path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"ckpt_path=auto: all 3 checkpoints under .* are damaged"):
        resolve_ckpt_path("auto", run_dir)
