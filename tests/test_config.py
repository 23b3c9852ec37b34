from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from benchmark.config import apply_overrides, parse_sets, run_id
from benchmark.errors import UserError


@dataclass(frozen=True)
class Example:
    epochs: int = 10
    lr: float = 0.002
    ctx_init: str = ""
    csc: bool = False
    position: Literal["end", "middle"] = "end"
    rho: float | None = None


def test_parse_and_apply_overrides():
    sets = parse_sets(["m.epochs=5", "m.lr=1e-3", "m.csc=true", "m.ctx_init=a photo of a"])
    config = apply_overrides(Example(), "m", sets["m"])
    assert config == Example(epochs=5, lr=1e-3, ctx_init="a photo of a", csc=True)
    assert apply_overrides(Example(), "m", {"rho": "none"}).rho is None
    assert apply_overrides(Example(), "m", {"rho": "0.5"}).rho == 0.5


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("epochs=5", "expected method.field=value"),
        ("m.epochs", "expected method.field=value"),
    ],
)
def test_malformed_set(item, message):
    with pytest.raises(UserError, match=message):
        parse_sets([item])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", "ten", "expected int"),
        ("lr", "fast", "expected float"),
        ("csc", "maybe", "expected true or false"),
        ("position", "front", "not one of end, middle"),
        ("epoch", "3", "fields: csc, ctx_init, epochs, lr, position, rho"),
    ],
)
def test_bad_override_values_name_the_problem(field, value, message):
    with pytest.raises(UserError, match=message):
        apply_overrides(Example(), "m", {field: value})


def test_run_id_depends_on_every_field():
    identity = {"method": "coop", "config": "{}", "seed": 1, "shots": 16}
    assert run_id(identity) == run_id(dict(reversed(identity.items())))
    for key, value in [("seed", 0), ("shots", 8), ("config", '{"epochs": 1}')]:
        assert run_id(dict(identity, **{key: value})) != run_id(identity)
