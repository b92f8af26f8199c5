"""A name -> class registry that classes join with a decorator (suites, system kinds, codecs, suite backends).

Backends (the ASR, speaker-embedding and MOS models the suites score with) share one build signature,
`registry.build(name, device=..., **options)`: the class declares what a config may set as a dataclass,
`Options`, which checks the options (known keys, typed values, its own `__post_init__`) before the class is
built as `cls(device=device, **options)`. `registry.options(name, options, where)` runs the same check
without building anything (a config's check at load time).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from flashspeech.foundation.fields import FieldError, from_table

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
            raise KeyError(self.unknown(name))
        return self[name]

    def unknown(self, name: Any) -> str:
        """The message for a name nothing is registered as: the known names."""
        return f"unknown {self.what} {name!r}; known: {', '.join(sorted(self))}"

    def options(self, name: Any, options: dict[str, Any], where: str = "") -> Any:
        """The `Options` instance of the class registered as `name`, from a table of options (at dotted key
        `where`); FieldError naming the key for an unknown name, an option it does not take or a bad value."""
        if name not in self:
            raise FieldError(f"{where}: {self.unknown(name)}" if where else self.unknown(name))
        return from_table(self[name].Options, options, where, what=f"the {name} {self.what}")

    def build(self, name: Any, /, device: str = "cpu", **options: Any) -> Any:
        """The one build signature: the class registered as `name`, its options checked (`options`), built as
        `cls(device=device, **options)`."""
        checked = self.options(name, options)
        values = {f.name: getattr(checked, f.name) for f in dataclasses.fields(checked) if f.init}
        return self[name](device=device, **values)


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """The options of a class a config can set nothing of."""
