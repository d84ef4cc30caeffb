"""The import rule of DESIGN.md, read from the source with `ast`: no package imports one above it, and no module or
package import cycles (function-local imports count: they run too)."""

from __future__ import annotations

import ast
from pathlib import Path

import llmexp

PACKAGE = Path(llmexp.__file__).resolve().parent
# Lowest first. A package may import its own layer and those below; the root package (`__version__`) is below all.
LAYERS = [
    {"llmexp", "errors", "config"},
    {"tokenizer"},
    {"models"},
    {"artifacts"},
    {"data", "prepare"},
    {"tasks", "finetune"},
    {"sweeps", "tracking", "evaluation", "training", "serving", "preflight"},
    {"cli"},
]
LAYER_OF = {name: index for index, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """Every llmexp module this file imports, wherever the import statement stands (`from pkg import sub` counts as
    an import of the submodule)."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "llmexp")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: up `level - 1` packages from this one
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            if base.split(".")[0] == "llmexp":
                subs = {f"{base}.{alias.name}" for alias in node.names} & modules
                found.update(subs or {base})
    return found


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "llmexp"


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in imported_modules(path, set(modules)):
            # `from llmexp.x import y` may name a submodule y: resolve to the deepest module that exists.
            while imported not in modules and "." in imported:
                imported = imported.rsplit(".", 1)[0]
            if imported != name:
                targets.add(imported)
        edges[name] = targets
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_every_package_has_a_layer():
    packages = {package_of(m) for m in graph()}
    assert packages <= set(LAYER_OF), f"packages without a layer in this test: {sorted(packages - set(LAYER_OF))}"


def test_nothing_imports_upward():
    upward = [
        f"{source} imports {target}"
        for source, targets in graph().items()
        for target in targets
        if LAYER_OF[package_of(target)] > LAYER_OF[package_of(source)]
    ]
    assert not upward, "\n".join(upward)


def test_no_module_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_no_package_import_cycle():
    packages: dict[str, set[str]] = {}
    for source, targets in graph().items():
        packages.setdefault(package_of(source), set()).update(
            package_of(t) for t in targets if package_of(t) != package_of(source)
        )
    cycle = find_cycle(packages)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_checker_sees_a_planted_upward_import_and_cycle():
    edges = {"llmexp.models.gpt": {"llmexp.training.run"}, "llmexp.training.run": {"llmexp.models.gpt"}}
    assert find_cycle(edges) == ["llmexp.models.gpt", "llmexp.training.run", "llmexp.models.gpt"]
    assert LAYER_OF[package_of("llmexp.training.run")] > LAYER_OF[package_of("llmexp.models.gpt")]
