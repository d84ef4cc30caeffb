"""Training on prepared shards: windows, ranks, mixtures, and a resumed run that continues the exact batch sequence."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from llmexp.data.shards import load_prepared
from llmexp.data.shards_datamodule import MixedWindows, ShardsDataModule, ShardWindows
from llmexp.errors import DataError
from llmexp.prepare.cleaning import CleanConfig
from llmexp.prepare.dedup import DedupConfig
from llmexp.prepare.pii import PIIConfig
from llmexp.prepare.pipeline import PackConfig, Preparation
from llmexp.prepare.sources import FileSource, PydocsSource
from llmexp.tokenizer import TokenizerSpec
from llmexp.training.run import train


def _prepare(source, out: Path, tokenizer_path: Path | None = None) -> Path:
    spec = (
        TokenizerSpec(kind="pretrained", path=str(tokenizer_path)) if tokenizer_path else TokenizerSpec(vocab_size=300)
    )
    Preparation(
        source=source,
        clean=CleanConfig(**{k: None for k in ("min_words", "max_duplicate_ngram_char_fraction", "min_stop_words")}),
        pii=PIIConfig(types=[]),
        dedup=DedupConfig(near={"enabled": False}),
        tokenizer=spec,
        pack=PackConfig(shard_tokens=30000),
        output_dir=out,
        val_fraction=0.1,
        num_workers=0,
        progress=False,
    ).run()
    return out


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return _prepare(PydocsSource(include_docstrings=False), tmp_path_factory.mktemp("prepared") / "pydocs")


@pytest.fixture(scope="module")
def second(tmp_path_factory, prepared) -> Path:
    """Another dataset encoded with the first one's tokenizer (as a mixture needs)."""
    root = tmp_path_factory.mktemp("second")
    texts = [" ".join(f"note{(i * 7 + j) % 101} of value{j}" for j in range(40)) for i in range(60)]
    (root / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return _prepare(FileSource([str(root / "docs.jsonl")]), root / "notes", prepared / "tokenizer.json")


def test_windows_are_consecutive_slices_of_each_shard(prepared):
    data = load_prepared(prepared)
    shards = data.shards("train")
    assert len(shards) > 1
    windows = ShardWindows(data.shard_paths("train"), data.dtype, block_size=16)
    assert len(windows) == sum((len(s) - 1) // 16 for s in shards)
    first_of_second = (len(shards[0]) - 1) // 16
    assert np.array_equal(windows.window(1), shards[0][16:33])
    assert np.array_equal(windows.window(first_of_second), shards[1][:17])
    item = windows[first_of_second]
    assert item["input_ids"].tolist() == shards[1][:16].tolist() and item["labels"].tolist() == shards[1][1:17].tolist()


def _indices(module: ShardsDataModule, rank: int, world: int) -> list[int]:
    module.trainer = SimpleNamespace(global_rank=rank, world_size=world, accumulate_grad_batches=1)
    return list(module.train_dataloader().sampler)


def test_ranks_read_disjoint_windows_and_a_seed_fixes_the_order(prepared):
    module = ShardsDataModule(str(prepared), block_size=16, batch_size=4, seed=3)
    module.prepare(TokenizerSpec())
    ranks = [_indices(module, r, 2) for r in range(2)]
    assert not set(ranks[0]) & set(ranks[1])
    assert len(ranks[0]) == len(ranks[1]) == len(module.dataset("train")) // 2
    assert _indices(module, 0, 2) == ranks[0]
    other = ShardsDataModule(str(prepared), block_size=16, batch_size=4, seed=4)
    other.prepare(TokenizerSpec())
    assert _indices(other, 0, 2) != ranks[0]


def test_mixture_draws_windows_in_proportion_to_weights(prepared, second):
    module = ShardsDataModule([str(prepared), str(second)], weights=[3, 1], samples_per_epoch=400, block_size=16)
    module.prepare(TokenizerSpec())
    mixed = module.dataset("train")
    assert isinstance(mixed, MixedWindows) and len(mixed) == 400
    assert np.bincount(mixed.items[:, 0]).tolist() == [300, 100]
    assert len(set(mixed.items[mixed.items[:, 0] == 1, 1].tolist())) == 100  # a subset: no window twice
    n = len(mixed.parts[1])
    upsampled = MixedWindows(mixed.parts, [1, 3], seed=0, length=4 * n).items
    assert np.bincount(upsampled[upsampled[:, 0] == 1, 1]).tolist() == [3] * n  # three full passes
    again = MixedWindows(mixed.parts, [3, 1], seed=0, length=400)
    assert np.array_equal(again.items, mixed.items)
    assert not np.array_equal(MixedWindows(mixed.parts, [3, 1], seed=1, length=400).items, mixed.items)


def test_clear_errors(prepared, tmp_path):
    with pytest.raises(DataError, match=r"no manifest\.json"):
        load_prepared(tmp_path)
    module = ShardsDataModule(str(prepared))
    other = TokenizerSpec(vocab_size=280).train(["something else entirely"] * 10)
    with pytest.raises(DataError, match="its tokenizer differs from the checkpoint's"):
        module.prepare(TokenizerSpec(), tokenizer=other)
    with pytest.raises(DataError, match="the val split has no window of 100001 tokens"):
        module = ShardsDataModule(str(prepared), block_size=100000)
        module.prepare(TokenizerSpec())
        module.dataset("val")


def _batches(path: Path) -> dict[int, list]:
    return {row["step"]: row["input_ids"] for row in map(json.loads, path.read_text().splitlines())}


def test_resumed_training_sees_the_identical_batch_sequence(make_cfg, tmp_path, prepared):
    common = (
        "experiment=smoke",
        "data=shards",
        f"data.path={prepared}",
        "data.block_size=32",
        "data.val_batch_size=2",
        "trainer.max_steps=24",
        "trainer.val_check_interval=12",
        "callbacks=minimal",
        "+callbacks.record._target_=helpers.RecordBatches",
    )
    stop = ("+callbacks.stop._target_=helpers.StopAtStep", "+callbacks.stop.step=10")
    train(make_cfg(*common, f"+callbacks.record.path={tmp_path / 'a.jsonl'}", *stop, run_dir=tmp_path / "a"))
    ckpt = tmp_path / "a" / "checkpoints" / "last.ckpt"
    train(
        make_cfg(*common, f"+callbacks.record.path={tmp_path / 'b.jsonl'}", f"ckpt_path={ckpt}", run_dir=tmp_path / "b")
    )
    train(make_cfg(*common, f"+callbacks.record.path={tmp_path / 'c.jsonl'}", run_dir=tmp_path / "c"))
    before, after, straight = (_batches(tmp_path / f"{r}.jsonl") for r in "abc")
    assert sorted(before) == list(range(10)) and sorted(after) == list(range(10, 24))
    assert sorted(straight) == list(range(24))
    assert {**before, **after} == straight
    assert len({json.dumps(b) for b in straight.values()}) == 24  # the batches really differ from step to step


def test_provenance_tells_two_prepared_datasets_apart_by_their_manifests(make_cfg, tmp_path, prepared, second):
    from llmexp.tracking.diff import diff_records, load_record

    for name, path in (("a", prepared), ("b", second)):
        cfg = make_cfg(
            "experiment=smoke",
            "data=shards",
            f"data.path={path}",
            "data.block_size=32",
            "trainer.max_steps=2",
            "callbacks=minimal",
            "eval.final_validation=false",
            run_dir=tmp_path / name,
        )
        train(cfg)
    a, b = load_record(tmp_path / "a"), load_record(tmp_path / "b" / "checkpoints" / "last.ckpt")
    changed = {key for key, _, _ in diff_records(a, b)}
    assert {"provenance.data_fingerprint", "config.data.path"} <= changed
    assert "provenance.tokenizer_sha256" not in changed  # the second dataset was encoded with the first's tokenizer
    assert (
        a["provenance.tokenizer_sha256"] == json.loads((prepared / "manifest.json").read_text())["tokenizer"]["sha256"]
    )
