"""Method configurations: ``--set method.field=value`` overrides and run identities."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from benchmark.errors import UserError

#: The settings presets: each method's official settings, the mini world's short runs, and the
#: settings under which a paper's tables ran (its name as in results/reference/published.csv).
PRESETS = ("reference", "quick", "prograd-iccv2023", "gcscoop")


def require(condition: bool, message: str) -> None:
    """A config's check of its values (in ``__post_init__``): ``ValueError(message)`` unless
    ``condition``; ``--set`` reports it as a one-line usage error naming the field."""
    if not condition:
        raise ValueError(message)


def at_least(name: str, value: float, low: float) -> None:
    """A config field that must be a finite number of at least ``low``."""
    require(math.isfinite(value) and value >= low, f"{name} must be at least {low}, got {value}")


def above(name: str, value: float, low: float) -> None:
    """A config field that must be a finite number greater than ``low``."""
    message = f"{name} must be a finite number above {low}, got {value}"
    require(math.isfinite(value) and value > low, message)


def a_template(name: str, template: str) -> None:
    """A config field holding a hand-crafted prompt (empty: the dataset's own): ``{}`` once."""
    if template:
        from benchmark.datasets.spec import template_problem

        problem = template_problem(template)
        require(problem is None, f"{name}: {problem}")


def parse_sets(items: Iterable[str]) -> dict[str, dict[str, str]]:
    """``["coop.epochs=10", ...]`` -> ``{"coop": {"epochs": "10"}}``."""
    parsed: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        method, dot, field = key.strip().partition(".")
        if not sep or not dot or not method or not field:
            raise UserError(f"--set {item!r}: expected method.field=value, e.g. coop.epochs=10")
        parsed.setdefault(method, {})[field] = value.strip()
    return parsed


def _convert(text: str, kind: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if text.lower() in ("none", "null") and len(options) < len(typing.get_args(kind)):
            return None
        errors = []
        for option in options:
            try:
                return _convert(text, option, where)
            except UserError as exc:
                errors.append(str(exc))
        raise UserError(errors[0] if errors else f"{where}: cannot parse {text!r}")
    if origin is typing.Literal:
        choices = typing.get_args(kind)
        if text not in choices:
            raise UserError(f"{where}: {text!r} is not one of {', '.join(map(str, choices))}")
        return text
    if kind is bool:
        lowered = text.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise UserError(f"{where}: expected true or false, got {text!r}")
    if kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            raise UserError(f"{where}: expected {kind.__name__}, got {text!r}") from None
        if kind is float and value != value:
            raise UserError(f"{where}: expected a number, got {text!r}")
        return value
    if kind is str:
        return text
    raise UserError(f"{where}: fields of type {kind} cannot be set from the command line")


def apply_overrides(config: Any, method: str, overrides: Mapping[str, str]) -> Any:
    """A copy of the frozen dataclass ``config`` with fields set from strings, type-checked."""
    hints = typing.get_type_hints(type(config))
    fields = {f.name for f in dataclasses.fields(config)}
    changes = {}
    for name, text in overrides.items():
        if name not in fields:
            raise UserError(
                f"--set {method}.{name}: {method} has no field {name!r}; "
                f"fields: {', '.join(sorted(fields))}"
            )
        changes[name] = _convert(text, hints[name], f"--set {method}.{name}")
    try:
        return dataclasses.replace(config, **changes)
    except (ValueError, TypeError) as exc:
        raise UserError(f"--set {method}: {exc}") from None


def config_json(config: Any) -> str:
    return json.dumps(dataclasses.asdict(config), sort_keys=True, default=str)


def run_id(identity: Mapping[str, Any]) -> str:
    """The identity of a run: a hash of its fully resolved configuration."""
    canonical = json.dumps(identity, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]
