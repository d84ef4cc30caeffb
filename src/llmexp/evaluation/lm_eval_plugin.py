"""Makes `lm_eval --model llmexp ...` work in any environment where llmexp is installed.

lm-eval (0.4.x) looks models up in its own registry only and reads no entry points. llmexp installs a startup hook,
`llmexp-lm-eval.pth`, which imports this module: it waits (a finder on sys.meta_path, nothing imported) until
lm-eval's model package `lm_eval.models` has been loaded, then registers every model declared under the
`lm_eval.models` entry-point group (llmexp's: pyproject.toml) as a lazy "module:class" entry, so the model's module
is imported only when lm-eval asks for it. Standard library only: this runs at every interpreter start.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: importing typing would cost every interpreter start milliseconds
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any

GROUP = "lm_eval.models"
WATCHED = "lm_eval.models"


def register_entry_point_models() -> list[str]:
    """Add each `lm_eval.models` entry point lm-eval's registry lacks; the names added."""
    from importlib.metadata import entry_points

    from lm_eval.api.registry import model_registry

    added = []
    for point in entry_points(group=GROUP):
        if point.name not in model_registry:
            # A "module:class" string, not the EntryPoint: lm-eval upgrades such a placeholder to the class when the
            # module registers itself on import (our adapter's @register_model).
            model_registry.register(point.name, target=f"{point.module}:{point.attr}")
            added.append(point.name)
    return added


class _RegisterAfterLoading:
    """The real loader of lm_eval.models, followed by the registration (a loader by protocol, without importlib.abc)."""

    def __init__(self, loader: Any):
        self.loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        register_entry_point_models()

    def __getattr__(self, name: str) -> Any:  # resource readers and the like: the real loader's
        return getattr(self.loader, name)


class LmEvalModelsFinder:
    """Answers only for `lm_eval.models`, once: the spec the other finders give, with the registering loader."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != WATCHED:
            return None
        sys.meta_path.remove(self)
        for finder in sys.meta_path:
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None and spec.loader is not None:
                spec.loader = _RegisterAfterLoading(spec.loader)
                return spec
        return None


def install() -> None:
    """Register now if lm-eval's models are already loaded, else when they are."""
    if WATCHED in sys.modules:
        register_entry_point_models()
    elif not any(isinstance(finder, LmEvalModelsFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, LmEvalModelsFinder())


install()
