"""`llmexp-prepare` under faults: its parent process killed alone (workers must die with it, write nothing more, and
leave no temporary file after the rerun), and bad input that leaves nothing to train on (one line naming why)."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
from test_prepare import _cli, _preparation, prose, write_jsonl

from llmexp.errors import DataError
from llmexp.prepare.manifest import page_skipped_inputs
from llmexp.prepare.sources import FileSource


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Running, or stopped; a zombie (dead, not yet reaped by whoever adopted it) does not count."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def listing(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_workers_die_with_their_parent_and_a_rerun_leaves_no_temporary(tmp_path):
    rng = random.Random(7)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(10):
        write_jsonl(corpus / f"part{i:02d}.jsonl", [prose(rng, 150) for _ in range(30)])
    out = tmp_path / "out"
    args = [f"source.paths=[{corpus}]", "name=k", "tokenizer.vocab_size=300", "num_workers=2", "progress=false"]
    parent = _cli(*args, f"hydra.run.dir={out}")
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("work/clean-*/*.arrow")) and parent.poll() is None:
        time.sleep(0.02)
    workers = children(parent.pid)
    os.kill(parent.pid, signal.SIGKILL)  # the parent alone, not its process group
    parent.wait(timeout=30)
    assert len(workers) >= 2, "the run should have been killed while its workers were busy"
    deadline = time.time() + 10
    while time.time() < deadline and any(alive(w) for w in workers):
        time.sleep(0.05)
    assert not any(alive(w) for w in workers), "worker processes outlived their parent"
    before = listing(out)
    time.sleep(2)
    assert listing(out) == before, "something wrote into the output after the parent died"
    assert not (out / "manifest.json").exists()

    rerun = _cli(*args, "num_workers=0", f"hydra.run.dir={out}")  # the same shards with any worker count
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read()[-3000:]
    assert not [p for p in out.rglob(".*.tmp*")], "temporary files were left behind"
    assert json.loads((out / "manifest.json").read_text())["run"]["reused"]["clean_units"] >= 1


def test_nothing_left_to_train_on_names_the_missing_field(tmp_path):
    rows = [{"instruction": f"say {i}", "input": "", "output": f"answer {i}"} for i in range(20)]
    (tmp_path / "alpaca.json").write_text(json.dumps(rows, indent=2))  # a .json array, read as one
    source, out = tmp_path / "alpaca.json", tmp_path / "out"
    proc = _cli("name=x", "progress=false", "num_workers=0", f"source.paths=[{source}]", f"hydra.run.dir={out}")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and len(err.strip().splitlines()) == 1, err
    assert "no training documents left: 0 read" in err
    assert (
        "missing_text_field 20 (source.text_field='text' not in a row (its fields: instruction, input, output))" in err
    )


def test_a_val_split_that_takes_every_document_is_one_clear_error(tmp_path):
    (tmp_path / "c").mkdir()
    write_jsonl(tmp_path / "c" / "d.jsonl", [prose(random.Random(8), 60) for _ in range(3)])
    with pytest.raises(DataError, match="every kept document fell in the val split"):
        _preparation(FileSource([str(tmp_path / "c")]), tmp_path / "out", val_fraction=0.999999).run()


def test_a_long_list_of_skipped_inputs_is_paged_into_a_gzipped_file(tmp_path):
    entries = [{"input": f"files:f{i}.txt", "reason": "binary_file", "count": 1} for i in range(1500)]
    manifest = {"skipped_inputs": list(entries)}
    page_skipped_inputs(tmp_path, manifest)
    assert manifest["skipped_inputs"]["total"] == 1500 and len(manifest["skipped_inputs"]["first"]) == 1000
    with gzip.open(tmp_path / manifest["skipped_inputs"]["all_in"], "rt") as handle:
        assert [json.loads(line) for line in handle] == entries
