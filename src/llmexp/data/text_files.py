"""Documents from local text files: .txt (cut into chunks) and .jsonl (one document per row)."""

from __future__ import annotations

import glob
import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

from llmexp.data.corpus import Document, Split, split_of

log = logging.getLogger(__name__)


def expand_paths(patterns: list[str] | str, key: str = "data.corpus.paths") -> list[Path]:
    """Globs and directories to a sorted list of files; a pattern that matches nothing is an error, not a no-op.

    `key` names the config entry the patterns came from, for the error message.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    files: set[Path] = set()
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if path.is_dir():
            matches = [p for p in path.rglob("*") if p.is_file()]
        else:
            matches = [Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file()]
        if not matches:
            raise FileNotFoundError(f"{key}: {pattern!r} matches no file")
        files.update(matches)
    return sorted(files)


class TextFilesCorpus:
    """Local files as a corpus; long plain-text files are cut into `chunk_chars` pieces so both splits get text."""

    def __init__(
        self, paths: list[str] | str, text_field: str = "text", val_fraction: float = 0.05, chunk_chars: int = 20000
    ):
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"data.corpus.val_fraction must be in (0, 1), got {val_fraction}")
        self.files = expand_paths(list(paths) if not isinstance(paths, str) else paths)
        self.text_field = text_field
        self.val_fraction = val_fraction
        self.chunk_chars = chunk_chars

    def _file_documents(self, path: Path) -> Iterator[Document]:
        if path.suffix == ".jsonl":
            with path.open(encoding="utf-8", errors="replace") as handle:
                for lineno, line in enumerate(handle):
                    try:
                        text = json.loads(line)[self.text_field]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        log.warning("skipping malformed row %s:%d", path, lineno + 1)
                        continue
                    if isinstance(text, str) and text.strip():
                        yield Document(f"{path.name}:{lineno}", text)
            return
        text = path.read_text(encoding="utf-8", errors="replace")
        for start in range(0, len(text), self.chunk_chars):
            chunk = text[start : start + self.chunk_chars]
            if chunk.strip():
                yield Document(f"{path.name}:{start}", chunk)

    def documents(self, split: Split) -> Iterator[Document]:
        for path in self.files:
            for doc in self._file_documents(path):
                if split_of(doc.doc_id, self.val_fraction) == split:
                    yield doc

    def fingerprint(self) -> str:
        digest = hashlib.sha256(f"files|{self.text_field}|{self.val_fraction}|{self.chunk_chars}".encode())
        for path in self.files:
            stat = path.stat()
            digest.update(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        return digest.hexdigest()[:16]
