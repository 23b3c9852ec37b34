"""Recipes: the matrix behind each published table, as data, and the cells it plans.

``results/reference/recipes.toml`` holds one recipe per table of
``results/reference/published.csv`` that the suite can run (``prograd-iccv2023/table1``): the
protocol, datasets, shot counts, seeds, backbone and weights, settings preset and methods of
the table's main rows, the table's ablations (rows with a ``variant`` that ``--set`` can
express, e.g. ProGrad's lambda), and the published rows no cell can give, each with its
reason. A table the suite cannot run at all is a ``[[not_reproducible]]`` entry with its
reason. The file's header lists the keys.

A recipe plans like ``run`` (:func:`benchmark.planner.plan`), one :class:`Part` at a time: the
main methods with the preset's settings, then each ablation with its ``--set`` values. The
run ids are the planner's, so a cell that two recipes share (table 5 repeats table 1's CoOp
and ProGrad rows; ProGrad's lambda 1.0 on OxfordPets is table 1's ProGrad) is run once and
reused. A run id holds the fingerprints of the data a cell reads, so only planning with the
data root gives them (:class:`RecipeRunner`); :func:`recipe_cells` plans without any data,
cells without run ids, which :attr:`RecipeCell.key` identifies by what the result table
records of them (for one data root, two cells have equal run ids exactly when their keys
are equal).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark import planner
from benchmark.config import config_json, parse_sets
from benchmark.errors import EXIT_ENVIRONMENT, UserError, unknown_name
from benchmark.planner import Cell
from benchmark.registry import Registry
from benchmark.request import RunRequest, resolve_request, select_methods
from benchmark.runner import Runner

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "MAIN",
    "RECIPES_FILE",
    "RECORDED_KEY",
    "NotReproduced",
    "Part",
    "Recipe",
    "RecipeCell",
    "RecipeRunner",
    "Recipes",
    "Unreproducible",
    "load",
    "narrow",
    "plan_recipe",
    "recipe_cells",
    "recipe_request",
    "unique_cells",
    "unique_groups",
]

RECIPES_FILE = Path(__file__).resolve().parent.parent / "results" / "reference" / "recipes.toml"
"""The recipes, next to the published numbers in the repository's ``results/reference``."""

MAIN = ""
"""The variant of a table's main rows (published.csv's empty ``variant``)."""

_RECIPE_KEYS = frozenset(
    {
        "name",
        "paper",
        "table",
        "title",
        "source",
        "protocol",
        "datasets",
        "shots",
        "seeds",
        "backbone",
        "pretrained",
        "preset",
        "methods",
        "notes",
        "ablation",
        "not_reproduced",
    }
)
_ABLATION_KEYS = frozenset({"variant", "methods", "set", "datasets"})
_NOT_REPRODUCED_KEYS = frozenset({"method", "variant", "eval_datasets", "reason"})
_UNREPRODUCIBLE_KEYS = frozenset({"paper", "table", "reason"})


@dataclass(frozen=True)
class Part:
    """Methods that run with the same settings: a table's main rows (``variant`` empty), or
    one ablation's (published.csv's ``variant``, the ``--set`` values that make it, and the
    datasets it runs on; ``None``: every dataset of the recipe)."""

    variant: str
    methods: tuple[str, ...]
    sets: tuple[str, ...] = ()
    datasets: tuple[str, ...] | None = None


@dataclass(frozen=True)
class NotReproduced:
    """Published rows of a recipe's table that no cell gives: ``method``'s rows (only its
    ``variant``'s, and only those on ``eval_datasets``, where given), and why."""

    method: str
    reason: str
    variant: str | None = None
    eval_datasets: tuple[str, ...] | None = None

    def covers(self, method: str, variant: str, eval_dataset: str) -> bool:
        """Whether the published row (method, variant, eval_dataset) is one of these."""
        return (
            method == self.method
            and (self.variant is None or variant == self.variant)
            and (self.eval_datasets is None or eval_dataset in self.eval_datasets)
        )


@dataclass(frozen=True)
class Recipe:
    """The matrix of one published table."""

    name: str
    paper: str
    table: str
    title: str
    source: str
    protocol: str
    datasets: tuple[str, ...]
    shots: tuple[int, ...]
    seeds: tuple[int, ...]
    backbone: str
    pretrained: str
    preset: str
    parts: tuple[Part, ...]
    not_reproduced: tuple[NotReproduced, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def methods(self) -> tuple[str, ...]:
        """Every method the recipe runs, in order of first appearance."""
        return tuple(dict.fromkeys(m for part in self.parts for m in part.methods))


@dataclass(frozen=True)
class Unreproducible:
    """A published table the suite cannot run, and why."""

    paper: str
    table: str
    reason: str


@dataclass(frozen=True)
class Recipes:
    """The recipes file: the runnable tables and the ones that are not."""

    recipes: tuple[Recipe, ...]
    unreproducible: tuple[Unreproducible, ...]

    def names(self) -> list[str]:
        return [r.name for r in self.recipes]

    def get(self, name: str) -> Recipe:
        """The recipe ``name``; an unknown name is a one-line error listing the valid ones."""
        for recipe in self.recipes:
            if recipe.name == name:
                return recipe
        for entry in self.unreproducible:
            if name == f"{entry.paper}/table{entry.table}":
                raise UserError(f"recipe {name!r}: that table is not reproducible: {entry.reason}")
        raise unknown_name("recipe", name, self.names())


# -- reading the file ------------------------------------------------------------------------


def load(path: Path | None = None) -> Recipes:
    """The recipes of ``path`` (default :data:`RECIPES_FILE`); a malformed file is a one-line
    error naming the entry."""
    path = RECIPES_FILE if path is None else Path(path)
    try:
        content = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{path}: not a readable recipes file ({exc})", EXIT_ENVIRONMENT) from None
    unknown = sorted(set(content) - {"recipe", "not_reproducible"})
    if unknown:
        raise UserError(f"{path}: unknown top-level keys {unknown}", EXIT_ENVIRONMENT)
    recipes = tuple(
        _recipe(entry, f"{path}: recipe {i + 1}")
        for i, entry in enumerate(content.get("recipe", []))
    )
    unreproducible = tuple(
        _unreproducible(entry, f"{path}: not_reproducible {i + 1}")
        for i, entry in enumerate(content.get("not_reproducible", []))
    )
    names = [r.name for r in recipes]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"{path}: recipes named twice: {', '.join(twice)}", EXIT_ENVIRONMENT)
    return Recipes(recipes, unreproducible)


def _fail(where: str, message: str) -> UserError:
    return UserError(f"{where}: {message}", EXIT_ENVIRONMENT)


def _table(entry: Any, keys: frozenset[str], where: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise _fail(where, "not a table")
    unknown = sorted(set(entry) - keys)
    if unknown:
        raise _fail(where, f"unknown keys {unknown}; valid: {', '.join(sorted(keys))}")
    return entry


def _text(entry: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = entry.get(key, default)
    if not isinstance(value, str) or (default is None and not value.strip()):
        raise _fail(where, f"{key!r} must be a non-empty string")
    return value


def _items(entry: dict[str, Any], key: str, kind: type, where: str, empty: bool = False) -> tuple:
    value = entry.get(key)
    ok = isinstance(value, list) and all(
        isinstance(v, kind) and not isinstance(v, bool) for v in value
    )
    if not ok or (not value and not empty) or len(set(value)) != len(value):
        raise _fail(where, f"{key!r} must be a list of distinct {kind.__name__} values")
    return tuple(value)


def _recipe(entry: Any, where: str) -> Recipe:
    entry = _table(entry, _RECIPE_KEYS, where)
    where = f"{where} ({entry.get('name', '?')})"
    datasets = _items(entry, "datasets", str, where)
    parts = []
    main = _items(entry, "methods", str, where, empty=True)
    if main:
        parts.append(Part(MAIN, main))
    for i, ablation in enumerate(entry.get("ablation", [])):
        at = f"{where}: ablation {i + 1}"
        ablation = _table(ablation, _ABLATION_KEYS, at)
        only = _items(ablation, "datasets", str, at) if "datasets" in ablation else None
        outside = sorted(set(only or ()) - set(datasets))
        if outside:
            raise _fail(at, f"datasets {outside} are not among the recipe's datasets")
        parts.append(
            Part(
                _text(ablation, "variant", at),
                _items(ablation, "methods", str, at),
                _items(ablation, "set", str, at),
                only,
            )
        )
    if not parts:
        raise _fail(where, "runs nothing: give 'methods' or an [[recipe.ablation]]")
    not_reproduced = []
    for i, item in enumerate(entry.get("not_reproduced", [])):
        at = f"{where}: not_reproduced {i + 1}"
        item = _table(item, _NOT_REPRODUCED_KEYS, at)
        not_reproduced.append(
            NotReproduced(
                _text(item, "method", at),
                _text(item, "reason", at),
                _text(item, "variant", at) if "variant" in item else None,
                _items(item, "eval_datasets", str, at) if "eval_datasets" in item else None,
            )
        )
    return Recipe(
        name=_text(entry, "name", where),
        paper=_text(entry, "paper", where),
        table=_text(entry, "table", where),
        title=_text(entry, "title", where),
        source=_text(entry, "source", where),
        protocol=_text(entry, "protocol", where),
        datasets=datasets,
        shots=_items(entry, "shots", int, where),
        seeds=_items(entry, "seeds", int, where),
        backbone=_text(entry, "backbone", where),
        pretrained=_text(entry, "pretrained", where),
        preset=_text(entry, "preset", where),
        parts=tuple(parts),
        not_reproduced=tuple(not_reproduced),
        notes=_items(entry, "notes", str, where, empty=True) if "notes" in entry else (),
    )


def _unreproducible(entry: Any, where: str) -> Unreproducible:
    entry = _table(entry, _UNREPRODUCIBLE_KEYS, where)
    return Unreproducible(
        _text(entry, "paper", where), _text(entry, "table", where), _text(entry, "reason", where)
    )


# -- narrowing -------------------------------------------------------------------------------


def _chosen(asked: Sequence[Any] | None, available: Sequence[Any], what: str, name: str) -> list:
    """The values of ``available`` that ``asked`` names (wildcards allowed for names)."""
    if asked is None:
        return list(available)
    chosen = []
    for item in asked:
        if isinstance(item, str):
            matched = [a for a in available if fnmatch.fnmatchcase(a, item)]
        else:
            matched = [a for a in available if a == item]
        if not matched:
            shown = ", ".join(map(str, available))
            raise UserError(f"{what} {item}: not in recipe {name} (its {what}: {shown})")
        chosen.extend(matched)
    return [a for a in available if a in chosen]


def narrow(
    recipe: Recipe,
    *,
    methods: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    shots: Sequence[int] | None = None,
) -> Recipe:
    """The recipe restricted to some of its methods (``coop``, ``prograd*``), datasets,
    seeds and shot counts; asking for anything outside it is a one-line error."""
    kept_methods = _chosen(methods, recipe.methods, "methods", recipe.name)
    kept_datasets = _chosen(datasets, recipe.datasets, "datasets", recipe.name)
    parts = []
    for part in recipe.parts:
        part_methods = tuple(m for m in part.methods if m in kept_methods)
        part_datasets = part.datasets
        if part_datasets is not None:
            part_datasets = tuple(d for d in part_datasets if d in kept_datasets)
        if part_methods and part_datasets != ():
            parts.append(dataclasses.replace(part, methods=part_methods, datasets=part_datasets))
    return dataclasses.replace(
        recipe,
        datasets=tuple(kept_datasets),
        seeds=tuple(_chosen(seeds, recipe.seeds, "seeds", recipe.name)),
        shots=tuple(_chosen(shots, recipe.shots, "shots", recipe.name)),
        parts=tuple(parts),
    )


# -- planning --------------------------------------------------------------------------------


def recipe_request(registry: Registry, recipe: Recipe, **operational: Any) -> RunRequest:
    """The run request of ``recipe``: every method of every part, its datasets, shots, seeds,
    backbone, weights and preset, through :func:`~benchmark.request.resolve_request` (which
    checks the names). ``operational`` are the options that do not change the matrix
    (``data_root``, ``results``, ``cache_dir``, ``device``, ``rerun``, ``retries``, and
    ``require_data=False`` to plan without a data root)."""
    return resolve_request(
        registry,
        methods=list(recipe.methods),
        protocols=[recipe.protocol],
        datasets=list(recipe.datasets),
        shots=list(recipe.shots),
        seeds=list(recipe.seeds),
        backbone=recipe.backbone,
        pretrained=recipe.pretrained,
        preset=recipe.preset,
        **operational,
    )


def plan_recipe(
    registry: Registry, recipe: Recipe, request: RunRequest, catalog: Any, read_data: bool = True
) -> list[tuple[Part, list[list[Cell]]]]:
    """Each part of ``recipe`` with its planned groups (:func:`benchmark.planner.plan` of
    ``request`` restricted to the part's methods and datasets, with its ``--set`` values);
    with ``read_data`` false, without run ids."""
    planned = []
    for part in recipe.parts:
        sub = dataclasses.replace(
            request,
            methods=select_methods(registry, part.methods),
            datasets=list(part.datasets) if part.datasets is not None else request.datasets,
            overrides=parse_sets(part.sets),
        )
        planned.append((part, planner.plan(registry, sub, catalog, read_data)))
    return planned


def unique_groups(planned: list[tuple[Part, list[list[Cell]]]]) -> list[list[Cell]]:
    """The groups of every part (planned with the data), each run id once (an ablation may
    repeat a main cell)."""
    seen: set[str] = set()
    groups = []
    for _, part_groups in planned:
        for group in part_groups:
            fresh = [cell for cell in group if cell.run_id not in seen]
            seen.update(cell.run_id for cell in fresh)
            if fresh:
                groups.append(fresh)
    return groups


RECORDED_KEY = (
    "method",
    "protocol",
    "dataset",
    "shots",
    "seed",
    "backbone",
    "pretrained",
    "config",
)
"""The columns of the result table that identify a recipe's cell (:attr:`RecipeCell.key`)."""


@dataclass(frozen=True)
class RecipeCell:
    """A planned cell of a recipe, with the variant of the part it belongs to and the
    recipe's backbone and weights."""

    variant: str
    cell: Cell
    backbone: str
    pretrained: str

    @property
    def key(self) -> tuple[str, str, str, int, int, str, str, str]:
        """What the result table records of the cell's identity: its values of
        :data:`RECORDED_KEY`, the config as the ``config`` column holds it. The rest of a run
        id is fixed by these (the dataset's template, the method's code version) or is the
        content of the data and weights, which the table does not record: for one data
        root, two cells have equal run ids exactly when their keys are equal."""
        cell = self.cell
        return (
            cell.method,
            cell.protocol,
            cell.dataset,
            cell.shots,
            cell.seed,
            self.backbone,
            self.pretrained,
            config_json(cell.config),
        )


def unique_cells(cells: Iterable[RecipeCell]) -> list[Cell]:
    """The planned cells, each once (by :attr:`RecipeCell.key`)."""
    return list({c.key: c.cell for c in cells}.values())


def recipe_cells(registry: Registry, recipe: Recipe) -> list[RecipeCell]:
    """Every planned cell of ``recipe`` with its part's variant, planned without any data:
    without run ids (see the module doc). A cell in several parts appears once per part."""
    from benchmark.catalog import DatasetCatalog
    from benchmark.datasets.spec import DataContext

    unused = Path("unused")  # planning writes nothing and reads no data
    request = recipe_request(
        registry, recipe, results=unused, cache_dir=unused, device="cpu", require_data=False
    )
    catalog = DatasetCatalog(registry.datasets, DataContext(None, unused), request.datasets)
    return [
        RecipeCell(part.variant, cell, recipe.backbone, recipe.pretrained)
        for part, groups in plan_recipe(registry, recipe, request, catalog, read_data=False)
        for group in groups
        for cell in group
    ]


class RecipeRunner(Runner):
    """The runner of a recipe: :class:`~benchmark.runner.Runner` executing the recipe's
    cells (every part, each run id once) instead of the plain matrix of its request."""

    def __init__(
        self,
        registry: Registry,
        recipe: Recipe,
        request: RunRequest,
        progress: Callable[[str], None] = print,
    ) -> None:
        super().__init__(registry, request, progress)
        self.recipe = recipe

    def plan(self) -> list[list[Cell]]:
        return unique_groups(plan_recipe(self.registry, self.recipe, self.request, self.catalog))
