"""The embedded corpus: Python's documentation that ships with every interpreter.

Two parts, both read from files of the running interpreter without importing any of its modules (importing
`antigravity` opens a browser): the pydoc topics (`pydoc_data.topics`, the language reference as plain text) and the
docstrings of the standard library's modules, classes and functions, extracted with `ast`.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from llmexp.data.corpus import Document, Split, split_of

# Folders of the standard library that hold tests, demos or vendored code rather than documentation.
_SKIPPED_DIRS = frozenset(
    {"test", "tests", "site-packages", "dist-packages", "idlelib", "__pycache__", "lib2to3", "turtledemo", "ensurepip"}
)
_DOCUMENTED = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def pydoc_topics() -> Iterator[Document]:
    """The reference topics `help()` shows (`for`, `with`, `typesseq`, ...), one document each."""
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield Document(doc_id=f"topic:{name}", text=topics[name].strip() + "\n")


def module_docstrings(path: Path, module: str) -> str:
    """All docstrings of one source file, each under the dotted name of what it documents."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return ""
    parts: list[str] = []
    doc = ast.get_docstring(tree)
    if doc:
        parts.append(f"{module}\n{doc}")

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, _DOCUMENTED):
                name = f"{prefix}.{child.name}"
                child_doc = ast.get_docstring(child)
                if child_doc:
                    parts.append(f"{name}\n{child_doc}")
                visit(child, name)

    visit(tree, module)
    return "\n\n".join(parts) + "\n" if parts else ""


def stdlib_sources(root: Path) -> Iterator[tuple[Path, str]]:
    """(file, dotted module name) for the standard library's own .py files, in a fixed order."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIPPED_DIRS and not d.startswith("."))
        rel = Path(dirpath).relative_to(root)
        for filename in sorted(filenames):
            if not filename.endswith(".py"):
                continue
            parts = [*rel.parts, filename[:-3]]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if parts:
                yield Path(dirpath) / filename, ".".join(parts)


@functools.lru_cache(maxsize=2)
def stdlib_documents(root: str) -> tuple[Document, ...]:
    """Docstrings of every standard-library module (parsed once per process: ~2 s, ~2 MB)."""
    docs = []
    for path, module in stdlib_sources(Path(root)):
        text = module_docstrings(path, module)
        if text:
            docs.append(Document(doc_id=f"module:{module}", text=text))
    return tuple(docs)


class PydocsCorpus:
    """Pydoc topics plus standard-library docstrings, split into train/val by document."""

    def __init__(self, val_fraction: float = 0.05, include_topics: bool = True, include_docstrings: bool = True):
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"data.corpus.val_fraction must be in (0, 1), got {val_fraction}")
        if not (include_topics or include_docstrings):
            raise ValueError("data.corpus: include_topics and include_docstrings cannot both be false")
        self.val_fraction = val_fraction
        self.include_topics = include_topics
        self.include_docstrings = include_docstrings
        self.stdlib_root = Path(sysconfig.get_paths()["stdlib"])

    def all_documents(self) -> Iterator[Document]:
        if self.include_topics:
            yield from pydoc_topics()
        if self.include_docstrings:
            yield from stdlib_documents(str(self.stdlib_root))

    def documents(self, split: Split) -> Iterator[Document]:
        for doc in self.all_documents():
            if split_of(doc.doc_id, self.val_fraction) == split:
                yield doc

    def fingerprint(self) -> str:
        """Cheap content key: interpreter version, settings, and the names and sizes of the files read."""
        digest = hashlib.sha256(
            f"pydocs|{sys.version}|{self.val_fraction}|{self.include_topics}|{self.include_docstrings}".encode()
        )
        if self.include_docstrings:
            for path, module in stdlib_sources(self.stdlib_root):
                digest.update(f"{module}:{path.stat().st_size};".encode())
        return digest.hexdigest()[:16]
