"""`llmexp-prepare` end to end: counts in the manifest, shard format, bad input, kill-and-resume, mixtures."""

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from llmexp.data.shards import load_prepared
from llmexp.prepare.cleaning import CleanConfig
from llmexp.prepare.dedup import DedupConfig
from llmexp.prepare.pii import PIIConfig
from llmexp.prepare.pipeline import PackConfig, Preparation, prepare_from_config
from llmexp.prepare.sources import FileSource, Mixture
from llmexp.tokenizer import TokenizerSpec

STOP = ["the", "of", "and", "to", "with", "that", "a", "in", "is", "was"]


def prose(rng: random.Random, n_words: int) -> str:
    stems = ("river", "stone", "bright", "cold", "market", "garden", "quiet", "letter")
    suffixes = ("", "s", "ed", "ing", "er", "ly", "ness", "ful", "ward", "ish", "ment", "ous", "ive", "al", "ion")
    vocab = [stem + suffix for stem in stems for suffix in suffixes]
    words = [
        rng.choice(STOP) if rng.random() < 0.3 else rng.choice(vocab) + str(rng.randint(0, 999)) for _ in range(n_words)
    ]
    sentences = [" ".join(words[i : i + 12]).capitalize() + "." for i in range(0, n_words, 12)]
    return " ".join(sentences)


def write_jsonl(path: Path, texts: list[str]) -> None:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))


def edit_one_word(text: str) -> str:
    words = text.split()
    words[len(words) // 2] = "changed"
    return " ".join(words)


def prepare_cfg(make_cfg, *overrides):
    fixed = ("name=test", "num_workers=0", "progress=false", "tokenizer.vocab_size=300")
    return make_cfg(*fixed, *overrides, config_name="prepare")


def test_prepare_counts_everything_and_writes_well_formed_shards(make_cfg, tmp_path):
    rng = random.Random(0)
    docs = [prose(rng, 200) for _ in range(40)]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_jsonl(corpus / "a.jsonl", docs[:20] + docs[:5])  # 5 exact copies
    write_jsonl(corpus / "b.jsonl", docs[20:] + [edit_one_word(d) for d in docs[5:10]])  # 5 near copies
    private = prose(rng, 200).replace(" ", " Mail ann@example.org or 10.1.2.3 ", 1)
    (corpus / "c.txt").write_text(f"Too short to keep.\n\n{private}\n")
    cfg = prepare_cfg(make_cfg, f"source.paths=[{corpus}]", "val_fraction=0.2", "source.txt_unit=paragraph")
    manifest = prepare_from_config(cfg)
    counts = manifest["counts"]
    assert counts["documents_read"] == 52 and counts["documents_out"] == 51
    assert counts["filtered"] == {"min_words": 1}
    assert counts["pii"] == {"email": 1, "ip_address": 1}
    assert counts["dedup"]["exact"] == 5 and counts["dedup"]["near"] == 5 and counts["dedup"]["kept"] == 41

    prepared = load_prepared(tmp_path / "run")
    tokenizer = prepared.tokenizer()
    assert prepared.dtype == np.uint16 and tokenizer.sha256() == manifest["tokenizer"]["sha256"]
    texts = []
    for split in ("train", "val"):
        info = manifest["splits"][split]
        assert info["tokens"] == sum(s["tokens"] for s in info["shards"]) > 0
        for i, shard in enumerate(prepared.shards(split)):
            offsets = prepared.document_offsets(split, i)
            assert offsets[-1] == len(shard)
            assert (shard[offsets[1:] - 1] == tokenizer.eos_id).all()
            assert (shard == tokenizer.eos_id).sum() == len(offsets) - 1
            texts += [tokenizer.decode(shard[a : b - 1]) for a, b in itertools.pairwise(offsets)]
    assert len(texts) == 41 and set(docs) <= set(texts)
    assert any("<EMAIL>" in t and "<IP_ADDRESS>" in t for t in texts)
    card = (tmp_path / "run" / "DATACARD.md").read_text()
    assert "| near duplicates removed | 5 |" in card and "| email | 1 |" in card

    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "run" / "tokenizer.json"))
    assert hf(docs[1], add_special_tokens=False)["input_ids"] == tokenizer.encode(docs[1])


def test_bad_inputs_are_skipped_counted_and_listed_by_file_in_the_manifest(make_cfg, tmp_path):
    rng = random.Random(1)
    good = [prose(rng, 80) for _ in range(6)]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_jsonl(corpus / "good.jsonl", good[:3])
    (corpus / "image.png").write_bytes(bytes(range(256)) * 64)
    (corpus / "latin1.txt").write_bytes(good[3].encode("utf-8") + "\ncaf\xe9\n".encode("latin-1"))
    (corpus / "empty.txt").write_bytes(b"")
    with (corpus / "huge.jsonl").open("w") as handle:  # one line above the default 16 MiB cap, then a good row
        handle.write(json.dumps({"text": "word " * (17 << 18)}) + "\n" + json.dumps({"text": good[4]}) + "\n")
    (corpus / "rows.jsonl").write_text('{"text": "unterminated\n' + json.dumps({"text": good[5]}) + "\n")
    manifest = prepare_from_config(prepare_cfg(make_cfg, f"source.paths=[{corpus}]", "clean=none", "val_fraction=0"))
    assert manifest["counts"]["skipped"] == {
        "binary_file": 1,
        "empty_file": 1,
        "invalid_utf8": 1,
        "malformed_json": 1,
        "oversized_line": 1,
    }
    # latin1.txt loses only its bad line: its good text is a sixth document
    assert manifest["counts"]["documents_read"] == 6 and manifest["splits"]["train"]["documents"] == 6
    listed = {(e["input"], e["reason"]): e["count"] for e in manifest["skipped_inputs"]}
    assert listed == {
        ("files:image.png", "binary_file"): 1,
        ("files:empty.txt", "empty_file"): 1,
        ("files:latin1.txt", "invalid_utf8"): 1,
        ("files:rows.jsonl", "malformed_json"): 1,
        ("files:huge.jsonl", "oversized_line"): 1,
    }


def _cli(*args: str, cwd: Path | None = None, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "llmexp.cli.prepare", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        **popen,
    )


def test_a_missing_path_is_one_clear_line(tmp_path):
    proc = _cli("name=x", f"source.paths=[{tmp_path}/nowhere/*.jsonl]", f"hydra.run.dir={tmp_path / 'out'}")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert err.strip() == f"llmexp-prepare: error: source.paths: '{tmp_path}/nowhere/*.jsonl' matches no file"


def _shard_bytes(root: Path) -> dict[str, bytes]:
    files = sorted((root / "shards").glob("*-*.*"))
    return {f.name: f.read_bytes() for f in files} | {"tokenizer.json": (root / "tokenizer.json").read_bytes()}


@pytest.mark.slow
def test_killed_prepare_resumes_to_byte_identical_shards(tmp_path):
    rng = random.Random(2)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(60):
        write_jsonl(corpus / f"part{i:02d}.jsonl", [prose(rng, 200) for _ in range(40)])
    args = [f"source.paths=[{corpus}]", "name=k", "clean=none", "tokenizer.vocab_size=400", "pack.shard_tokens=50000"]
    clean = _cli(*args, "num_workers=0", f"hydra.run.dir={tmp_path / 'clean'}")
    assert clean.wait(timeout=600) == 0, clean.stderr.read()[-3000:]

    out = tmp_path / "resumed"
    killed = _cli(*args, "num_workers=2", f"hydra.run.dir={out}", start_new_session=True)
    done: list[Path] = []
    deadline = time.time() + 300
    while len(done) < 5 and time.time() < deadline and killed.poll() is None:
        time.sleep(0.02)
        done = [p for p in out.glob("work/clean-*/*.arrow") if not p.name.startswith(".")]
    os.killpg(killed.pid, signal.SIGKILL)  # the run and its worker processes
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL and not (out / "manifest.json").exists()
    finished = [p for p in out.glob("work/clean-*/*.arrow") if not p.name.startswith(".")]
    assert len(finished) >= 5
    print(f"\nkilled after {len(finished)} of 60 units were cleaned")

    resumed = _cli(*args, "num_workers=2", f"hydra.run.dir={out}")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["reused"]["clean_units"] == len(finished)
    assert len(manifest["splits"]["train"]["shards"]) > 1
    assert _shard_bytes(out) == _shard_bytes(tmp_path / "clean")


def _preparation(
    source, out: Path, tokenizer: TokenizerSpec | None = None, clean: CleanConfig | None = None, **kwargs
) -> Preparation:
    return Preparation(
        source=source,
        clean=clean or CleanConfig(min_words=None, max_duplicate_ngram_char_fraction=None),
        pii=PIIConfig(),
        dedup=DedupConfig(),
        tokenizer=tokenizer or TokenizerSpec(vocab_size=300),
        pack=PackConfig(),
        output_dir=out,
        progress=False,
        num_workers=0,
        **kwargs,
    )


def test_mixture_weights_repeat_or_sample_documents(tmp_path):
    rng = random.Random(3)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        write_jsonl(tmp_path / name / "docs.jsonl", [prose(rng, 60) for _ in range(40)])
    mixture = Mixture(
        {"a": FileSource([str(tmp_path / "a")], weight=2.0), "b": FileSource([str(tmp_path / "b")], weight=0.5)}
    )
    manifest = _preparation(mixture, tmp_path / "out", val_fraction=0.0).run()
    train = manifest["splits"]["train"]
    assert train["unique_documents"] == 80
    from_b = train["documents"] - 2 * 40
    assert 8 <= from_b <= 32, from_b  # a seeded half of b's 40 documents
    assert [s["documents_kept"] for s in manifest["sources"]] == [40, 40]


def test_hf_streaming_source_through_the_config(make_cfg, tmp_path):
    rng = random.Random(4)
    files = []
    for i in range(3):
        files.append(tmp_path / f"p{i}.jsonl")
        write_jsonl(files[-1], [prose(rng, 80) for _ in range(5)])
    cfg = prepare_cfg(
        make_cfg,
        "source=hf",
        "source.name=json",
        f"source.data_files=[{','.join(map(str, files))}]",
        "source.streaming=true",
        f"source.cache_dir={tmp_path / 'hf'}",
        "clean=none",
        "val_fraction=0",
    )
    manifest = prepare_from_config(cfg)
    assert manifest["sources"][0]["units"] == 3 and manifest["counts"]["documents_read"] == 15


@pytest.mark.parametrize("kind", ["wordpiece", "unigram"])
def test_other_tokenizer_kinds_and_reuse_on_rerun(tmp_path, kind):
    rng = random.Random(5)
    (tmp_path / "c").mkdir()
    write_jsonl(tmp_path / "c" / "docs.jsonl", [prose(rng, 60) for _ in range(30)])
    spec = TokenizerSpec(kind=kind, vocab_size=200, special_tokens=["<|endoftext|>", "<unk>"])
    first = _preparation(FileSource([str(tmp_path / "c")]), tmp_path / "out", spec).run()
    before = _shard_bytes(tmp_path / "out")
    second = _preparation(FileSource([str(tmp_path / "c")]), tmp_path / "out", spec).run()
    assert first["tokenizer"]["kind"] == kind and second["run"]["reused"]["tokenizer"] == 1
    assert second["run"]["reused"]["clean_units"] == 1 and _shard_bytes(tmp_path / "out") == before


def test_eos_ids_in_shards_are_exactly_document_boundaries(tmp_path):
    rng = random.Random(6)
    halves = [(prose(rng, 20), prose(rng, 20)) for _ in range(20)]
    (tmp_path / "c").mkdir()
    write_jsonl(tmp_path / "c" / "d.jsonl", [f"{a} <|endoftext|> {b}" for a, b in halves])
    _preparation(FileSource([str(tmp_path / "c")]), tmp_path / "out", val_fraction=0.0).run()
    data = load_prepared(tmp_path / "out")
    (shard,) = data.shards("train")
    eos = data.tokenizer().eos_id
    assert (shard == eos).sum() == 20 and shard[-1] == eos
    first = data.tokenizer().decode(shard[: data.document_offsets("train", 0)[1] - 1])
    assert first == f"{halves[0][0]}  {halves[0][1]}"
