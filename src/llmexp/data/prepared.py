"""Train (or reuse) the tokenizer and tokenise both splits once per (corpus, tokenizer); cached on disk.

Several processes (DDP ranks, parallel test workers) may ask for the same artefact at once: a file lock makes one
build it and the others read it, and every file is written under a temporary name and renamed, so a killed build
never leaves a half-written cache entry behind.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock

from llmexp.data.corpus import Corpus, Split
from llmexp.errors import DataError
from llmexp.tokenizer import Tokenizer, TokenizerSpec

log = logging.getLogger(__name__)
SPLITS: tuple[Split, ...] = ("train", "val")


@dataclass
class TokenizedCorpus:
    """A tokenizer and each split as one stream of token ids, documents separated by the EOS id."""

    tokenizer: Tokenizer
    tokens: dict[str, np.ndarray]
    tokenizer_path: Path | None


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def load_or_train_tokenizer(corpus: Corpus, spec: TokenizerSpec, cache_dir: Path) -> tuple[Tokenizer, Path]:
    """The tokenizer trained by `spec` on the corpus's training split, from the cache when it exists."""
    entry = cache_dir / "tokenizers" / f"{spec.fingerprint()}-{corpus.fingerprint()}"
    path = entry / "tokenizer.json"
    entry.mkdir(parents=True, exist_ok=True)
    with FileLock(str(entry / ".lock")):
        if path.exists():
            log.info("reusing cached tokenizer %s", path)
            return Tokenizer.load(path), path
        log.info("training %s tokenizer (vocab %d) on the training split", spec.kind, spec.vocab_size)
        tokenizer = spec.train(doc.text for doc in corpus.documents("train"))
        _atomic_write_bytes(path, tokenizer.to_str().encode("utf-8"))
        return tokenizer, path


def tokenize_corpus(corpus: Corpus, tokenizer: Tokenizer, cache_dir: Path) -> dict[str, np.ndarray]:
    """Each split as a flat memory-mapped array of token ids, EOS after every document."""
    entry = cache_dir / "tokens" / f"{tokenizer.sha256()[:16]}-{corpus.fingerprint()}"
    entry.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(tokenizer.vocab_size)
    with FileLock(str(entry / ".lock")):
        meta_path = entry / "meta.json"
        if not meta_path.exists():
            counts = {}
            for split in SPLITS:
                texts = [doc.text for doc in corpus.documents(split)]
                if not texts:
                    raise DataError(
                        f"the corpus has no {split} documents (empty, or too small to split); add text or adjust "
                        "data.corpus.val_fraction"
                    )
                ids = [
                    np.asarray([*doc_ids, tokenizer.eos_id], dtype=dtype) for doc_ids in tokenizer.encode_batch(texts)
                ]
                stream = np.concatenate(ids)
                _atomic_write_bytes(entry / f"{split}.bin", stream.tobytes())
                counts[split] = {"documents": len(texts), "tokens": int(stream.size)}
            _atomic_write_bytes(meta_path, json.dumps({"dtype": dtype.name, "splits": counts}, indent=2).encode())
        meta = json.loads(meta_path.read_text())
    log.info("token counts: %s", meta["splits"])
    return {split: np.memmap(entry / f"{split}.bin", dtype=meta["dtype"], mode="r") for split in SPLITS}


def prepare(corpus: Corpus, spec: TokenizerSpec, cache_dir: str | Path) -> TokenizedCorpus:
    cache = Path(cache_dir)
    tokenizer, path = load_or_train_tokenizer(corpus, spec, cache)
    return TokenizedCorpus(tokenizer=tokenizer, tokens=tokenize_corpus(corpus, tokenizer, cache), tokenizer_path=path)
