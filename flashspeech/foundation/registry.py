"""A name -> class registry that classes join with a decorator (suites, system kinds, codecs)."""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T", bound=type)


class Registry(dict[str, Any]):
    """Classes by the value of their `key` attribute; registering another class under a taken name is an error."""

    def __init__(self, what: str, key: str):
        super().__init__()
        self.what, self.key = what, key

    def register(self, cls: T) -> T:
        """Class decorator: make `cls` available by its `key` attribute."""
        name = getattr(cls, self.key)
        if name in self and self[name] is not cls:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self[name] = cls
        return cls

    def lookup(self, name: Any) -> Any:
        """The class registered as `name`; KeyError listing the known names otherwise."""
        if name not in self:
            raise KeyError(f"unknown {self.what} {name!r}; known: {', '.join(sorted(self))}")
        return self[name]
