"""Dataclasses from TOML tables (`fields`) and the registry's one build signature (`registry`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from flashspeech.foundation.fields import FieldError, from_table, typed_fields
from flashspeech.foundation.registry import NoOptions, Registry


@dataclass(frozen=True)
class Inner:
    rate: float = 1.0

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"rate must be > 0, got {self.rate}")


@dataclass
class Outer:
    name: str
    steps: tuple[int, ...] = (1,)
    tags: list[str] = field(default_factory=list)
    limit: int | None = None
    inner: Inner = field(default_factory=Inner)


class OwnError(FieldError):
    pass


def test_known_keys_typed_values_and_nested_tables():
    values = typed_fields(Outer, {"name": "x", "steps": [2, 4], "inner": {"rate": 2}})
    assert values == {"name": "x", "steps": (2, 4), "inner": Inner(2)}
    assert from_table(Outer, {"name": "x"}).inner == Inner()
    bad = [
        ({"name": "x", "stpes": [1]}, "t.stpes: unknown key of an outer (known: name, steps, tags, limit, inner)"),
        ({}, "t.name: missing (a required key)"),
        ({"name": "x", "steps": [1, True]}, "t.steps.1: expected an integer, got True"),
        ({"name": "x", "limit": "3"}, "t.limit: expected an integer, got '3'"),
        ({"name": "x", "tags": "a"}, "t.tags: expected a list, got 'a'"),
        ({"name": "x", "inner": {"rate": 0}}, "t.inner: rate must be > 0, got 0"),  # __post_init__, named
        ([1], "t: expected a table, got [1]"),
    ]
    for data, message in bad:
        with pytest.raises(FieldError) as info:
            from_table(Outer, data, "t", what="an outer")
        assert str(info.value) == message


def test_skip_keys_are_known_and_left_to_the_caller_and_the_error_class_is_the_callers():
    assert typed_fields(Outer, {"name": "x", "kind": "k"}, skip=("kind",)) == {"name": "x"}
    with pytest.raises(OwnError, match=r"^kid: unknown key \(known: kind, name, "):
        typed_fields(Outer, {"name": "x", "kid": "k"}, skip=("kind",), error=OwnError)
    with pytest.raises(FieldError, match=r"^x: unknown key \(it takes none\)$"):
        typed_fields(NoOptions, {"x": 1})


def test_a_registry_builds_every_class_the_same_way():
    registry = Registry("toy backend", "name")

    @dataclass(frozen=True)
    class ToyOptions:
        size: int = 2

    @registry.register
    class Toy:
        name = "toy"
        Options = ToyOptions

        def __init__(self, device: str = "cpu", size: int = 2):
            self.device, self.size = device, size

    toy = registry.build("toy", device="cuda", size=3)
    assert (toy.device, toy.size) == ("cuda", 3) and registry.options("toy", {}) == ToyOptions()
    with pytest.raises(FieldError, match=r"^sise: unknown key of the toy toy backend \(known: size\)$"):
        registry.build("toy", sise=3)
    with pytest.raises(FieldError, match=r"^w\.size: expected an integer, got 'x'$"):
        registry.options("toy", {"size": "x"}, "w")
    with pytest.raises(FieldError, match=r"^w: unknown toy backend 'yot'; known: toy$"):
        registry.options("yot", {}, "w")
