"""The matrix of a request: cells, their resolved configurations and run identities.

A cell is (method, protocol, dataset, shots, seed). Its configuration is the method's
settings for the cell (:class:`~benchmark.method.Setting`: protocol, dataset, shots,
backbone, preset and the dataset's template), then the selected variant's changes, then the
user's ``--set`` overrides, checked field by field. Its run id is the hash of everything that
decides its result (:func:`identity`), so a finished cell is never run again and a changed one
is a new cell; that includes the content of its inputs, the fingerprint of every dataset it
reads (:mod:`benchmark.datasets.fingerprint`) and of the weights, so changed data or weights
behind an old name give new runs. Cells that differ only by seed form a group, which the
runner trains together. A cell that would train on an empty split, train on a class without
images or evaluate an empty split is refused here, before anything runs; a class with fewer
training images than the shots asked for trains on all it has, as the reference's sampler
does, and planning says so (a :class:`FewerShotsWarning`, which the runner prints).

Planning reads the selected datasets' splits (to fingerprint them) and hashes a weights file,
each once; with ``read_data=False`` it reads nothing and plans cells without a run id (what
``python -m benchmark config`` shows without the data). Nothing here writes a file or runs
anything; :func:`planning_warnings` prints what planning had to say.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from benchmark.config import apply_overrides, config_json, run_id
from benchmark.errors import EXIT_ENVIRONMENT, DataError, UserError, first_line, warning_lines
from benchmark.method import Method, Setting
from benchmark.protocol import Catalog, Plan, TrainData
from benchmark.registry import Registry
from benchmark.request import RunRequest, split_variant

#: Bump when a change of the shared engine (training views, sampler, evaluation) changes the
#: results of unchanged configurations: it is part of every run's identity.
ENGINE_VERSION = "2"


@dataclass
class Cell:
    """One run of the matrix, planned."""

    method: str  # as selected, e.g. "coop" or "coop:csc"
    protocol: str
    dataset: str
    shots: int
    seed: int
    config: Any
    run_id: str  # empty when planned without reading the data


def method_of(registry: Registry, name: str) -> Method:
    """The method object of ``name`` (``coop`` or ``coop:csc``; the variant is checked)."""
    base, variant = split_variant(name)
    if variant is not None:
        registry.methods.get(base).variant(variant)
    return registry.load_method(base)


def variant_changes(registry: Registry, name: str) -> Mapping[str, Any]:
    """The fields the variant of ``name`` sets (``coop:csc``); none for a method itself."""
    base, variant = split_variant(name)
    return {} if variant is None else registry.methods.get(base).variant(variant).changes


def overrides_of(overrides: Mapping[str, Mapping[str, str]], name: str) -> Mapping[str, str]:
    """The ``--set`` values for method ``name``: its own, else its base method's."""
    return overrides.get(name, overrides.get(split_variant(name)[0], {}))


def resolve_config(
    registry: Registry, name: str, setting: Setting, overrides: Mapping[str, Mapping[str, str]]
) -> Any:
    """The configuration of method ``name`` (with its variant) for ``setting``, with the
    ``--set`` overrides of ``name`` (or of its base method) applied and checked."""
    config = method_of(registry, name).config(setting)
    changes = variant_changes(registry, name)
    if changes:
        try:
            config = dataclasses.replace(config, **changes)
        except (TypeError, ValueError) as exc:
            raise UserError(f"variant {name}: {exc}") from None
    return apply_overrides(config, split_variant(name)[0], overrides_of(overrides, name))


def identity(
    name: str,
    method: Method,
    config: Any,
    setting: Setting,
    seed: int,
    pretrained: str,
    inputs: Mapping[str, Any],
) -> dict[str, Any]:
    """Everything that decides a run's result; its hash is the run id. ``inputs``: the
    fingerprints of the weights and of the data the cell reads."""
    return {
        **inputs,
        "method": name,
        "method_version": method.version,
        "engine_version": ENGINE_VERSION,
        "config": config_json(config),
        "protocol": setting.protocol,
        "dataset": setting.dataset,
        "template": setting.template,
        "shots": setting.shots,
        "seed": seed,
        "backbone": setting.backbone,
        "pretrained": pretrained,
    }


class PlanningWarning(UserWarning):
    """What planning has to say before anything runs (:func:`planning_warnings` shows it)."""


class FewerShotsWarning(PlanningWarning):
    """Some class of a training split has fewer images than the shots asked for."""


class LeftOutWarning(PlanningWarning):
    """A method or protocol whose own code raised while planning: its cells are left out."""


def images_per_class(train: TrainData) -> list[tuple[int, str]]:
    """(drawn training images, class name) of every class ``train`` trains on."""
    counts = Counter(sample.label for sample in train.samples)
    return [(counts[label], name) for label, name in enumerate(train.classes.names)]


def check_not_empty(plan: Plan, protocol: str, warn_fewer_shots: bool = False) -> None:
    """Refuse a cell that would train on no images, on a class without images, or evaluate
    a split of none: it could give no valid number (an empty test split would be "done" with
    no result; a class without training images is not trained K-shot). With
    ``warn_fewer_shots``, a :class:`FewerShotsWarning` when classes have fewer training
    images than the shots (the reference's sampler then takes all of them)."""
    train = plan.train
    if not train.samples:
        raise DataError(
            f"dataset {train.dataset!r}: its train split, which {protocol} trains on, has no images"
        )
    per_class = images_per_class(train)
    empty = [name for count, name in per_class if count == 0]
    if empty:
        raise DataError(
            f"dataset {train.dataset!r}: {len(empty)} of the {len(per_class)} classes that "
            f"{protocol} trains on have no training images ({', '.join(map(repr, empty[:3]))}"
            f"{', ...' if len(empty) > 3 else ''}); every trained class needs at least one"
        )
    for split in plan.evals:
        if not split.samples:
            which = "test split" if split.split == "all" else f"test split's {split.split} classes"
            raise DataError(
                f"dataset {split.eval_dataset!r}: its {which}, which {protocol} evaluates, "
                "has no images"
            )
    fewest, name = min(per_class)
    if warn_fewer_shots and fewest < train.shots:
        short = sum(count < train.shots for count, _ in per_class)
        warnings.warn(
            f"dataset {train.dataset!r} ({protocol}, {train.shots} shots): {short} of "
            f"{len(per_class)} classes have fewer than {train.shots} training images (fewest: "
            f"{fewest}, {name!r}); they train on all they have, as the reference's sampler "
            "does",
            FewerShotsWarning,
            stacklevel=2,
        )


def planning_warnings() -> contextlib.AbstractContextManager[None]:
    """Each distinct :class:`PlanningWarning` raised inside, as one ``warning:`` line on
    stderr after the block (planning is quick); other warnings go on as usual."""
    return warning_lines(PlanningWarning)


def check_overrides(request: RunRequest) -> None:
    """Every ``--set`` names a method run (``coop`` also sets ``coop:csc``)."""
    selected = {*request.methods, *(split_variant(m)[0] for m in request.methods)}
    for name in request.overrides:
        if name not in selected:
            raise UserError(
                f"--set {name}.*: method {name!r} is not among the methods run "
                f"({', '.join(request.methods)})"
            )


class Inputs:
    """The fingerprints of what the cells read, each computed once: the weights, and the
    datasets that the cells of one (protocol, dataset, shots) read, after checking that none
    of their splits is empty. Which splits a protocol reads, and whether they are empty,
    does not depend on the seed: the first seed's plan stands for all. A plan that raises
    with something else than a user error (a broken third-party protocol or reader) is left
    to fail its cells when they run."""

    def __init__(self, registry: Registry, request: RunRequest, catalog: Catalog) -> None:
        self.registry, self.request, self.catalog = registry, request, catalog
        self._data: dict[tuple[str, str, int], dict[str, str]] = {}

    def of(self, protocol: str, dataset: str, shots: int) -> dict[str, Any]:
        key = (protocol, dataset, shots)
        if key not in self._data:
            self._data[key] = self._read(protocol, dataset, shots)
        return {"weights": self.request.backbone.fingerprint, "data": self._data[key]}

    def _read(self, protocol_name: str, dataset: str, shots: int) -> dict[str, str]:
        protocol = self.registry.protocols.get(protocol_name)
        try:
            plan = protocol.plan(dataset, shots, self.request.seeds[0], self.catalog)
        except UserError:
            raise
        except Exception as exc:  # a broken protocol or reader: its cells will fail
            return {"unplanned": f"{type(exc).__name__}: {first_line(exc)}"}
        check_not_empty(plan, protocol_name, warn_fewer_shots=True)
        read = {plan.train.dataset, *(split.eval_dataset for split in plan.evals)}
        return {name: self.catalog.fingerprint(name) for name in sorted(read)}


class BrokenMethod(Exception):
    """A method's own code raised while its cells were configured (not a user error)."""


def plan(
    registry: Registry, request: RunRequest, catalog: Catalog, read_data: bool = True
) -> list[list[Cell]]:
    """The groups of cells of ``request`` (cells differing only by seed share a group); with
    ``read_data`` false, without run ids (empty).

    A method or protocol whose own code raises while planning (a method's ``config``, a
    protocol's ``training_datasets``) is broken: all its cells are left out, with a
    :class:`LeftOutWarning`; when every method or every protocol asked for is broken, that is
    a one-line :class:`UserError` (exit code 4)."""
    check_overrides(request)
    inputs = Inputs(registry, request, catalog)
    groups: list[list[Cell]] = []
    broken_methods: dict[str, str] = {}  # name -> why
    broken_protocols: dict[str, str] = {}
    for protocol_name in request.protocols:
        protocol = registry.protocols.get(protocol_name)
        try:
            datasets = protocol.training_datasets(request.datasets, catalog)
        except UserError:
            raise
        except Exception as exc:
            broken_protocols[protocol_name] = (
                f"protocol {protocol_name!r} ({registry.protocols.provider(protocol_name)}) "
                f"is broken: its training_datasets raised {type(exc).__name__}: "
                f"{first_line(exc)}"
            )
            continue
        for name in request.methods:
            if name in broken_methods:
                continue
            try:
                groups += _groups(
                    registry, request, catalog, inputs if read_data else None,
                    protocol_name, datasets, name,
                )  # fmt: skip
            except BrokenMethod as exc:
                provider = registry.methods.provider(split_variant(name)[0])
                broken_methods[name] = f"method {name!r} ({provider}) is broken: {exc}"
    for broken, asked in ((broken_methods, request.methods), (broken_protocols, request.protocols)):
        if broken and len(broken) == len(set(asked)):
            raise UserError(next(iter(broken.values())), EXIT_ENVIRONMENT)
        for why in broken.values():
            warnings.warn(f"{why}; its cells are left out", LeftOutWarning, stacklevel=2)
    return [group for group in groups if group[0].method not in broken_methods]


def _groups(
    registry: Registry,
    request: RunRequest,
    catalog: Catalog,
    inputs: Inputs | None,
    protocol_name: str,
    datasets: list[str],
    name: str,
) -> list[list[Cell]]:
    """The groups of method ``name`` under one protocol (without run ids when ``inputs`` is
    None); :class:`BrokenMethod` when the method's own code raises while configuring them."""
    method = method_of(registry, name)
    groups = []
    protocol = registry.protocols.get(protocol_name)
    for dataset in datasets:
        template = catalog.spec(dataset).template
        for shots in dict.fromkeys(request.shots or protocol.default_shots):
            setting = Setting(
                protocol_name, dataset, shots, request.backbone.name, request.preset, template
            )
            try:
                config = resolve_config(registry, name, setting, request.overrides)
                config_json(config)  # the run id holds it
            except UserError:
                raise
            except Exception as exc:
                cell = f"{protocol_name} · {dataset} · {shots} shot{'' if shots == 1 else 's'}"
                raise BrokenMethod(
                    f"configuring {cell} raised {type(exc).__name__}: {first_line(exc)}"
                ) from exc
            read = inputs.of(protocol_name, dataset, shots) if inputs is not None else None
            group = []
            for seed in dict.fromkeys(request.seeds):  # each seed once
                run = ""
                if read is not None:
                    pretrained = request.backbone.weights
                    key = identity(name, method, config, setting, seed, pretrained, read)
                    run = run_id(key)
                group.append(Cell(name, protocol_name, dataset, shots, seed, config, run))
            groups.append(group)
    return groups
