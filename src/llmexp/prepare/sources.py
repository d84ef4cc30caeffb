"""Where raw documents come from when preparing a dataset: local files, Hugging Face datasets, the embedded corpus.

A source is split into *units* (a file, a block of rows, a stream shard): the unit is what one worker processes and
what a resumed prepare skips when its output already exists, so its `fingerprint` changes whenever its content may
have. Sources are plain picklable objects (they travel to worker processes); heavy handles are opened lazily.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from omegaconf import DictConfig, ListConfig, OmegaConf

from llmexp.data.corpus import Document
from llmexp.data.text_files import expand_paths
from llmexp.errors import ConfigError, DataError
from llmexp.prepare.readers import ReadOptions, file_documents, row_text, splittable
from llmexp.prepare.streams import Skipped


@dataclass(frozen=True)
class Unit:
    """One independently processed piece of a source."""

    source: str
    key: str
    fingerprint: str
    size_bytes: int = 0
    byte_range: tuple[int, int | None] = (0, None)  # a part of a large file

    @property
    def uid(self) -> str:
        """A file-name-safe id, unique and stable for this content."""
        digest = hashlib.sha256(f"{self.source}|{self.key}|{self.fingerprint}".encode()).hexdigest()[:16]
        return f"{self.source}-{digest}"


class Source(Protocol):
    label: str
    weight: float

    def units(self) -> list[Unit]: ...

    def read(self, unit: Unit, skipped: Skipped) -> Iterator[Document]: ...

    def describe(self) -> dict[str, Any]: ...


def _check_weight(label: str, weight: float) -> float:
    if not weight > 0:
        raise ConfigError(f"source {label}: weight must be > 0, got {weight}")
    return float(weight)


class FileSource:
    """Local files, globs (`**` recurses) and directories; the format is taken from each file's extension."""

    kind = "files"

    def __init__(
        self,
        paths: list[str] | str,
        text_field: str = "text",
        txt_unit: str = "chunk",
        chunk_chars: int = 20000,
        max_line_bytes: int = 16 << 20,
        decode_errors: str = "line",
        unit_bytes: int = 32 << 20,
        weight: float = 1.0,
        label: str = "files",
    ):
        self.options = ReadOptions(text_field, txt_unit, chunk_chars, max_line_bytes, decode_errors)
        if unit_bytes < 1:
            raise ConfigError("source.unit_bytes must be >= 1")
        self.patterns = [paths] if isinstance(paths, str) else [str(p) for p in paths]
        if not self.patterns:
            raise ConfigError("source.paths is empty; give at least one file, glob or directory")
        self.unit_bytes = unit_bytes
        self.weight, self.label = _check_weight(label, weight), label

    def files(self) -> list[Path]:
        try:
            return expand_paths(self.patterns, key="source.paths")
        except FileNotFoundError as err:
            raise DataError(str(err)) from None

    def units(self) -> list[Unit]:
        files = self.files()
        root = Path(os.path.commonpath([str(f.parent.resolve()) for f in files]))
        units = []
        for path in files:
            stat = path.stat()
            key = path.resolve().relative_to(root).as_posix()
            fingerprint = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
            if stat.st_size <= self.unit_bytes or not splittable(path):
                units.append(Unit(self.label, key, fingerprint, stat.st_size))
                continue
            for start in range(0, stat.st_size, self.unit_bytes):  # large files: parts read by different workers
                end = min(start + self.unit_bytes, stat.st_size)
                units.append(Unit(self.label, f"{key}@{start}", fingerprint, end - start, (start, end)))
        return units

    def read(self, unit: Unit, skipped: Skipped) -> Iterator[Document]:
        path = Path(unit.fingerprint.rsplit(":", 2)[0])
        prefix = f"{self.label}:{unit.key.split('@')[0]}"
        yield from file_documents(path, prefix, skipped, self.options, unit.byte_range)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "weight": self.weight,
            "paths": self.patterns,
            **asdict(self.options),
            "unit_bytes": self.unit_bytes,
        }


class HFSource:
    """A Hugging Face `datasets` dataset (a hub name, or a loader such as 'json'/'parquet'/'text' with data_files).

    Regular datasets are cut into units of `rows_per_unit` rows; streaming ones into their own shards (one per input
    file for the file loaders), read without downloading the whole dataset first.
    """

    kind = "hf"

    def __init__(
        self,
        name: str,
        config: str | None = None,
        split: str = "train",
        data_files: Any = None,
        data_dir: str | None = None,
        revision: str | None = None,
        streaming: bool = False,
        text_field: str = "text",
        max_line_bytes: int = 16 << 20,
        rows_per_unit: int = 50000,
        cache_dir: str | None = None,
        weight: float = 1.0,
        label: str = "hf",
    ):
        if rows_per_unit < 1:
            raise ConfigError(f"source.rows_per_unit must be >= 1, got {rows_per_unit}")
        self.name, self.config, self.split, self.revision = name, config, split, revision
        self.data_files = _plain(data_files)
        self.data_dir, self.streaming, self.text_field = data_dir, streaming, text_field
        self.max_line_bytes = max_line_bytes
        self.rows_per_unit, self.cache_dir = rows_per_unit, cache_dir
        self.weight, self.label = _check_weight(label, weight), label
        self._dataset: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_dataset": None}

    def dataset(self) -> Any:
        if self._dataset is None:
            import datasets

            try:
                self._dataset = datasets.load_dataset(
                    self.name,
                    self.config,
                    split=self.split,
                    data_files=self.data_files,
                    data_dir=self.data_dir,
                    revision=self.revision,
                    streaming=self.streaming,
                    cache_dir=self.cache_dir,
                )
            except Exception as err:  # datasets raises many types (FileNotFoundError, DatasetNotFoundError, ...)
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise DataError(f"source.name={self.name}: cannot load the dataset: {first}") from err
            names = self._dataset.column_names
            if names is not None and self.text_field not in names:
                raise DataError(f"source.text_field={self.text_field!r} is not a column of {self.name}: {names}")
        return self._dataset

    def units(self) -> list[Unit]:
        ds = self.dataset()
        base = f"{self.name}|{self.config}|{self.split}|{self.revision}|{self.data_files}|{self.data_dir}"
        if self.streaming:
            n = ds.num_shards
            return [Unit(self.label, f"shard{i:05d}-of-{n:05d}", base) for i in range(n)]
        rows, step = ds.num_rows, self.rows_per_unit
        return [
            Unit(self.label, f"rows{start:09d}-{min(start + step, rows):09d}", f"{base}|{ds._fingerprint}")
            for start in range(0, rows, step)
        ]

    def _rows(self, unit: Unit) -> Iterator[dict[str, Any]]:
        ds = self.dataset()
        if self.streaming:
            index, total = (int(part) for part in unit.key.removeprefix("shard").split("-of-"))
            yield from ds.shard(num_shards=total, index=index)
            return
        start, stop = (int(part) for part in unit.key.removeprefix("rows").split("-"))
        yield from ds.select_columns([self.text_field]).select(range(start, stop))

    def read(self, unit: Unit, skipped: Skipped) -> Iterator[Document]:
        for row_number, row in enumerate(self._rows(unit)):
            if (text := row_text(row, self.text_field, self.max_line_bytes, skipped)) is not None:
                yield Document(f"{self.label}:{unit.key}:{row_number}", text)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "weight": self.weight,
            "name": self.name,
            "config": self.config,
            "split": self.split,
            "data_files": self.data_files,
            "data_dir": self.data_dir,
            "revision": self.revision,
            "streaming": self.streaming,
            "text_field": self.text_field,
            "max_line_bytes": self.max_line_bytes,
        }


class PydocsSource:
    """The embedded corpus (Python's documentation, see llmexp.data.pydocs): one unit."""

    kind = "pydocs"

    def __init__(
        self, include_topics: bool = True, include_docstrings: bool = True, weight: float = 1.0, label: str = "pydocs"
    ):
        from llmexp.data.pydocs import PydocsCorpus

        # val_fraction is unused here: prepare assigns splits itself, after deduplication.
        self.corpus = PydocsCorpus(
            val_fraction=0.5, include_topics=include_topics, include_docstrings=include_docstrings
        )
        self.weight, self.label = _check_weight(label, weight), label

    def units(self) -> list[Unit]:
        return [Unit(self.label, "all", self.corpus.fingerprint())]

    def read(self, unit: Unit, skipped: Skipped) -> Iterator[Document]:
        for doc in self.corpus.all_documents():
            yield Document(f"{self.label}:{doc.doc_id}", doc.text)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "weight": self.weight,
            "include_topics": self.corpus.include_topics,
            "include_docstrings": self.corpus.include_docstrings,
        }


class Mixture:
    """Several sources prepared together (deduplicated across all of them); each source's weight says how many
    times its surviving documents appear in the shards (2.0 = twice, 0.5 = a seeded half of them)."""

    kind = "mixture"

    def __init__(self, components: dict[str, Source]):
        if not components:
            raise ConfigError("source.components is empty; give at least one source")
        self.components = []
        for label, source in components.items():
            source.label = str(label)
            self.components.append(source)


def as_sources(source: Source | Mixture) -> list[Source]:
    """The list of sources behind a `source` config: one, or a mixture's components (labelled by their keys)."""
    return source.components if isinstance(source, Mixture) else [source]


def _plain(value: Any) -> Any:
    """OmegaConf containers to plain lists/dicts (datasets checks types)."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value
