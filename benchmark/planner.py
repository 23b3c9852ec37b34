"""The matrix of a request: cells, their resolved configurations and run identities.

A cell is (method, protocol, dataset, shots, seed). Its configuration is the method's
settings for the cell (:class:`~benchmark.method.Setting`: protocol, dataset, shots,
backbone, preset and the dataset's template), then the selected variant's changes, then the
user's ``--set`` overrides, checked field by field. Its run id is the hash of everything that
decides its result (:func:`identity`), so a finished cell is never run again and a changed one
is a new cell. Cells that differ only by seed form a group, which the runner trains together.

Planning reads registered specs only: no dataset file, no weights, no torch beyond importing
the selected methods. Nothing here writes or runs anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from benchmark.config import apply_overrides, config_json, run_id
from benchmark.errors import UserError
from benchmark.method import Method, Setting
from benchmark.protocol import Catalog
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
    run_id: str


def method_of(registry: Registry, name: str) -> Method:
    """The method object of ``name`` (``coop`` or ``coop:csc``; the variant is checked)."""
    base, variant = split_variant(name)
    spec = registry.methods.get(base)
    if variant is not None:
        spec.variant(variant)
    return spec.load()


def resolve_config(
    registry: Registry, name: str, setting: Setting, overrides: Mapping[str, Mapping[str, str]]
) -> Any:
    """The configuration of method ``name`` (with its variant) for ``setting``, with the
    ``--set`` overrides of ``name`` (or of its base method) applied and checked."""
    base, variant = split_variant(name)
    config = method_of(registry, name).config(setting)
    if variant is not None:
        changes = registry.methods.get(base).variant(variant).changes
        try:
            config = dataclasses.replace(config, **changes)
        except (TypeError, ValueError) as exc:
            raise UserError(f"variant {name}: {exc}") from None
    return apply_overrides(config, base, overrides.get(name, overrides.get(base, {})))


def identity(
    name: str, method: Method, config: Any, setting: Setting, seed: int, weights: str
) -> dict[str, Any]:
    """Everything that decides a run's result; its hash is the run id."""
    return {
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
        "pretrained": weights,
    }


def check_overrides(request: RunRequest) -> None:
    """Every ``--set`` names a method run (``coop`` also sets ``coop:csc``)."""
    selected = {*request.methods, *(split_variant(m)[0] for m in request.methods)}
    for name in request.overrides:
        if name not in selected:
            raise UserError(
                f"--set {name}.*: method {name!r} is not among the methods run "
                f"({', '.join(request.methods)})"
            )


def plan(registry: Registry, request: RunRequest, catalog: Catalog) -> list[list[Cell]]:
    """The groups of cells of ``request`` (cells differing only by seed share a group)."""
    check_overrides(request)
    groups = []
    for protocol_name in request.protocols:
        protocol = registry.protocols.get(protocol_name)
        datasets = protocol.training_datasets(request.datasets, catalog)
        for name in request.methods:
            method = method_of(registry, name)
            for dataset in datasets:
                template = catalog.spec(dataset).template
                for shots in request.shots or protocol.default_shots:
                    setting = Setting(
                        protocol_name,
                        dataset,
                        shots,
                        request.backbone.name,
                        request.preset,
                        template,
                    )
                    config = resolve_config(registry, name, setting, request.overrides)
                    weights = request.backbone.weights
                    groups.append(
                        [
                            Cell(
                                name,
                                protocol_name,
                                dataset,
                                shots,
                                seed,
                                config,
                                run_id(identity(name, method, config, setting, seed, weights)),
                            )
                            for seed in request.seeds
                        ]
                    )
    return groups
