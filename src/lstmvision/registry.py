"""A name -> builder registry that refuses duplicates (used for models and for tasks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from lstmvision.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """``@registry.register("name")`` on a class or function; ``registry.get("name")``."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

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
        if name not in self._items:
            known = ", ".join(sorted(self._items)) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r}; registered: {known}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items
