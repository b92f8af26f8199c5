"""Dataclasses from TOML tables: known keys, typed values, and an error that names the dotted field.

`typed_fields(cls, table, "suites.wer")` checks a table against dataclass `cls` (every key a field, every
required field there, each value of its annotated type, nested dataclasses built from their tables) and returns
the keyword arguments; `from_table` builds the instance, its `__post_init__` checks included. Errors are
`FieldError` (or the `error` class a caller passes), one line naming the dotted key: `suites.wer.beem: unknown
key of the wer suite (known: ...)`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Collection
from typing import Any, TypeVar

T = TypeVar("T")


class FieldError(ValueError):
    """A table that does not fit its dataclass; the message names the dotted key."""


def typed_fields(
    cls: type,
    data: Any,
    where: str = "",
    *,
    skip: Collection[str] = (),
    hide: Collection[str] = (),
    what: str = "",
    error: type[Exception] = FieldError,
) -> dict[str, Any]:
    """The keyword arguments of dataclass `cls` from the TOML table `data` (at dotted key `where`): only its
    fields, every required one, each value of its annotated type (a nested dataclass built from its table).
    Keys in `skip` are known (fields or not) but left out, for the caller to build; fields in `hide` are the code's
    to set, unknown to a table. `what` names the table's
    owner in an unknown-key message ("the wer suite"). Raises `error` (FieldError) naming the dotted key."""
    prefix = f"{where}." if where else ""
    if not isinstance(data, dict):
        raise error(f"{where or 'config'}: expected a table, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name not in hide}
    known = [*(k for k in skip if k not in fields), *fields]
    unknown = sorted(set(data) - set(known), key=str)
    if unknown:
        keys = ", ".join(prefix + str(k) for k in unknown)
        owner = f" of {what}" if what else ""
        takes = f"known: {', '.join(known)}" if known else "it takes none"
        raise error(f"{keys}: unknown key{'s' if len(unknown) > 1 else ''}{owner} ({takes})")
    for name, f in fields.items():
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise error(f"{prefix}{name}: missing (a required key)")
    hints = typing.get_type_hints(cls)
    return {k: _typed(v, hints[k], prefix + k, error) for k, v in data.items() if k not in skip}


def from_table(
    cls: type[T],
    data: Any,
    where: str = "",
    *,
    skip: Collection[str] = (),
    what: str = "",
    error: type[Exception] = FieldError,
) -> T:
    """An instance of dataclass `cls` from the table `data` (`typed_fields`, same arguments); a ValueError its
    `__post_init__` raises comes back as `error` prefixed with `where`."""
    values = typed_fields(cls, data, where, skip=skip, what=what, error=error)
    try:
        return cls(**values)
    except error:
        raise
    except ValueError as exc:
        raise error(f"{where}: {exc}" if where else str(exc)) from exc


def _typed(value: Any, hint: Any, key: str, error: type[Exception]) -> Any:
    """`value` checked against the type `hint` (dataclasses built from their tables); `error` naming `key`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _typed(value, options[0], key, error)
        for option in options:
            try:
                return _typed(value, option, key, error)
            except error:
                pass
        raise error(f"{key}: expected {' or '.join(_describe(o) for o in options)}, got {value!r}")
    if origin in (list, tuple):  # a TOML array: list[X] or tuple[X, ...]
        if not isinstance(value, list | tuple):
            raise error(f"{key}: expected {_describe(hint)}, got {value!r}")
        item = args[0] if args else Any
        items = [_typed(v, item, f"{key}.{i}", error) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise error(f"{key}: expected a table, got {value!r}")
        item = args[1] if args else Any
        return {k: _typed(v, item, f"{key}.{k}", error) for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else from_table(hint, value, key, error=error)
    checks = {bool: is_bool, int: is_int, float: is_number, str: lambda v: isinstance(v, str)}
    if hint not in checks:
        raise TypeError(f"{key}: no check for type {hint!r}")  # a field type this function does not know yet
    if not checks[hint](value):
        raise error(f"{key}: expected {_describe(hint)}, got {value!r}")
    return value


def is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def is_int(value: Any) -> bool:
    """An integer that is not a bool (TOML `true` is no count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def field_names(cls: type) -> list[str]:
    """The init fields of dataclass `cls`, in order: the keys its table may have."""
    return [f.name for f in dataclasses.fields(cls) if f.init]


def _describe(hint: Any) -> str:
    """`hint` in words, for an error message."""
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return "a list"
    if origin is dict or dataclasses.is_dataclass(hint):
        return "a table"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))
