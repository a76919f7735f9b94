"""A name -> builder registry that refuses duplicates (used for models and for tasks)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from lstmvision.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """``@registry.register("name")`` on a class or function; ``registry.get("name")``.

    ``load``: a module that registers every item when imported, imported on the first lookup
    (so that importing the registry itself stays cheap)."""

    def __init__(self, kind: str, load: str | None = None):
        self.kind, self._load = kind, load
        self._items: dict[str, T] = {}

    def _loaded(self) -> dict[str, T]:
        if self._load is not None:
            module, self._load = self._load, None
            importlib.import_module(module)
        return self._items

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(
                    f"{self.kind} {name!r} is already registered ({self._items[name]!r})"
                )
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        items = self._loaded()
        if name not in items:
            known = ", ".join(sorted(items)) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r}; registered: {known}")
        return items[name]

    def names(self) -> list[str]:
        return sorted(self._loaded())

    def __contains__(self, name: str) -> bool:
        return name in self._loaded()
