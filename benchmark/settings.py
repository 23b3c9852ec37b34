"""A method's settings as data: rules that say which values a cell gets, each citing its source.

A settings file is TOML, one per method (the built-in methods keep theirs next to their code,
``plugins/<name>.toml``)::

    [[rule]]
    source = "KaiyangZhou/CoOp configs/trainers/CoOp/rn50.yaml (DATALOADER, OPTIM)"
    set = { batch_size = 32, lr = 0.002 }

    [[rule]]
    protocol = "few_shot"
    shots = [2, 4]
    source = "KaiyangZhou/CoOp COOP.md (rn50_ep100 for 2 and 4 shots)"
    set = { epochs = 100 }

A rule applies to the cells it matches: ``preset``, ``protocol``, ``dataset``, ``shots`` and
``backbone`` each name a value or a list of values, and a key left out matches every cell.
The rules that match a cell apply in the file's order, later values replacing earlier ones,
except that every rule without ``preset`` comes before every rule with one: a preset (the
``quick`` preset, a paper's settings) changes the reference settings, it never hides behind
them. Every value keeps the source of the rule that set it, which ``python -m benchmark
config`` prints.

This module imports no torch.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Generic, TypeVar

from benchmark.errors import EXIT_ENVIRONMENT, UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: The keys a rule may match on (fields of :class:`benchmark.method.Setting`).
MATCH_KEYS = ("preset", "protocol", "dataset", "shots", "backbone")
RULE_KEYS = frozenset({*MATCH_KEYS, "source", "set"})


@dataclass(frozen=True)
class Rule:
    """Values set on the cells the rule matches (``None``: any value of that key)."""

    values: Mapping[str, Any]
    source: str
    preset: tuple[str, ...] | None = None
    protocol: tuple[str, ...] | None = None
    dataset: tuple[str, ...] | None = None
    shots: tuple[int, ...] | None = None
    backbone: tuple[str, ...] | None = None

    def matches(self, setting: Any) -> bool:
        return all(
            allowed is None or getattr(setting, key) in allowed
            for key, allowed in ((k, getattr(self, k)) for k in MATCH_KEYS)
        )


@dataclass(frozen=True)
class Resolved:
    """A cell's values, each with the source of the rule that set it."""

    values: dict[str, Any]
    sources: dict[str, str]


@dataclass(frozen=True)
class Settings:
    """The rules of one method, in application order."""

    rules: tuple[Rule, ...] = ()
    origin: str = ""

    @classmethod
    def read(cls, path: Path) -> Settings:
        """The rules of a settings file; a malformed file is a one-line error naming it."""
        try:
            content = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise UserError(
                f"{path}: not a readable settings file ({exc})", EXIT_ENVIRONMENT
            ) from None
        entries = content.get("rule", [])
        if not isinstance(entries, list):
            raise UserError(f"{path}: 'rule' must be an array of tables ([[rule]])")
        return cls(tuple(_rule(entry, path, i) for i, entry in enumerate(entries)), str(path))

    def resolve(self, setting: Any) -> Resolved:
        """The values of every rule matching ``setting``, in application order."""
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        ordered = [r for r in self.rules if r.preset is None] + [
            r for r in self.rules if r.preset is not None
        ]
        for rule in ordered:
            if rule.matches(setting):
                values.update(rule.values)
                sources.update(dict.fromkeys(rule.values, rule.source))
        return Resolved(values, sources)


def _choices(value: Any, key: str, where: str) -> tuple | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    kind = int if key == "shots" else str
    if not items or not all(isinstance(v, kind) and not isinstance(v, bool) for v in items):
        raise UserError(f"{where}: {key} must be a {kind.__name__} or a list of them")
    return tuple(items)


def _rule(entry: Any, path: Path, index: int) -> Rule:
    where = f"{path}: rule {index + 1}"
    if not isinstance(entry, dict):
        raise UserError(f"{where}: not a table")
    unknown = sorted(set(entry) - RULE_KEYS)
    if unknown:
        raise UserError(f"{where}: unknown keys {unknown}; valid: {', '.join(sorted(RULE_KEYS))}")
    values, source = entry.get("set"), entry.get("source")
    if not isinstance(values, dict) or not values:
        raise UserError(f"{where}: 'set' must be a table of field values")
    if not isinstance(source, str) or not source.strip():
        raise UserError(f"{where}: every rule cites its source ('source = \"owner/repo path\"')")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    matches = {key: _choices(entry.get(key), key, where) for key in MATCH_KEYS}
    return Rule(values, source, **matches)


ConfigT = TypeVar("ConfigT")


class Configured(Generic[ConfigT]):
    """A method whose config comes from a settings table (``settings_file``).

    ``config(setting)`` builds ``Config`` from the tables' values for the cell, then
    :meth:`complete` fills what depends on the dataset itself (a hand-crafted template of a
    dataset the table does not name). Fields the table leaves unset keep ``Config``'s
    defaults. A method without a table gets the defaults everywhere.
    """

    Config: type[ConfigT]
    #: The method's own table, read after the tables of ``base_settings`` (a family's).
    settings_file: Path | None = None
    base_settings: tuple[Path, ...] = ()

    @cached_property
    def settings(self) -> Settings:
        files = [*self.base_settings, *([self.settings_file] if self.settings_file else [])]
        tables = [Settings.read(path) for path in files]
        rules = tuple(rule for table in tables for rule in table.rules)
        return Settings(rules, ", ".join(str(path) for path in files))

    def config(self, setting: Any) -> ConfigT:
        values = self.settings.resolve(setting).values
        fields = {f.name for f in dataclasses.fields(self.Config)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise UserError(
                f"{self.settings.origin}: {self.Config.__module__}.Config has no fields "
                f"{unknown}; fields: {', '.join(sorted(fields))}",
                EXIT_ENVIRONMENT,
            )
        try:
            config = self.Config(**values)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{self.settings.origin}: {exc}", EXIT_ENVIRONMENT) from None
        return self.complete(config, setting)

    def config_sources(self, setting: Any) -> dict[str, str]:
        """The source of every value the table sets for the cell."""
        return self.settings.resolve(setting).sources

    def complete(self, config: ConfigT, setting: Any) -> ConfigT:
        return config

    def texts(self, config: ConfigT, setting: Any) -> dict[str, Any]:
        """The hand-written texts the method uses on the cell's dataset (prompts,
        templates), for ``python -m benchmark config``."""
        return {}

    def training_views(self, config: ConfigT) -> Sequence[int]:
        return ()


def beside(module_file: str) -> Path:
    """The settings file next to a method's module: ``plugins/coop.py`` -> ``coop.toml``."""
    return Path(module_file).with_suffix(".toml")
