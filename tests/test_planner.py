"""The planner: the matrix of a request, its groups and run ids (which include the data's
and the weights' fingerprints); without reading the data, the configs alone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from benchmark import planner
from benchmark.backbone import BackboneSpec
from benchmark.catalog import DatasetCatalog
from benchmark.datasets.spec import DataContext
from benchmark.errors import UserError
from benchmark.hookspecs import hookimpl
from benchmark.registry import MethodSpec
from benchmark.request import RunRequest
from tests.conftest import TOY_DATASET


def request(backbone, **changes) -> RunRequest:
    values = dict(
        methods=["zeroshot", "coop", "coop:csc"],
        protocols=["few_shot", "cross_dataset"],
        datasets=[TOY_DATASET, "toy_target", "toy_shift"],
        seeds=[1, 2, 3],
        backbone=backbone,
        results=Path("unused"),
        cache_dir=Path("unused"),
        shots=[1, 4],
        preset="quick",
    )
    values.update(changes)
    return RunRequest(**values)


def unreadable(ctx):
    raise AssertionError("planning read a dataset")


@pytest.fixture
def plan(tiny_backbone):
    """``plan(registry, read_data=True, **changes)``: the groups of a request on the toy
    datasets with the tiny model's weights (whose fingerprint every run id holds)."""

    def planned(registry, read_data: bool = True, **changes):
        req = request(changes.pop("backbone", tiny_backbone), **changes)
        catalog = DatasetCatalog(registry.datasets, DataContext(None, Path()), req.datasets)
        return planner.plan(registry, req, catalog, read_data)

    return planned


def ids(groups) -> set[str]:
    return {cell.run_id for group in groups for cell in group}


def test_the_matrix_and_its_groups(toy_registry, plan):
    groups = plan(toy_registry)
    # few-shot trains on the source and the target (not the shift); cross-dataset on the source
    expected = {
        (protocol, method, dataset, shots)
        for method in ("zeroshot", "coop", "coop:csc")
        for shots in (1, 4)
        for protocol, dataset in (
            ("few_shot", TOY_DATASET),
            ("few_shot", "toy_target"),
            ("cross_dataset", TOY_DATASET),
        )
    }
    heads = [(g[0].protocol, g[0].method, g[0].dataset, g[0].shots) for g in groups]
    assert sorted(heads) == sorted(expected) and len(heads) == len(expected)
    for group in groups:
        assert [c.seed for c in group] == [1, 2, 3]  # one group per cell, its seeds together
        assert len({c.run_id for c in group}) == 3
        assert all(c.config == group[0].config for c in group)
    assert len(ids(groups)) == 3 * len(expected)
    assert ids(plan(toy_registry)) == ids(groups)  # deterministic


def test_without_the_data_the_configs_are_planned_and_nothing_is_read(toy_registry, plan):
    with_data = plan(toy_registry)
    for entry in toy_registry.datasets.entries.values():
        entry.value = dataclasses.replace(entry.value, load=unreadable)
    without = plan(toy_registry, read_data=False)

    def what(groups):  # what each cell runs, whatever its data
        return [[(c.method, c.dataset, c.shots, c.seed, c.config) for c in g] for g in groups]

    assert what(without) == what(with_data)
    assert all(c.run_id == "" for g in without for c in g)


def test_the_run_id_holds_everything_that_decides_a_result(toy_registry, plan, monkeypatch):
    base = ids(plan(toy_registry, methods=["coop"], protocols=["few_shot"], shots=[1]))
    assert len(base) == 6
    changed = {
        "config": dict(overrides={"coop": {"epochs": "3"}}),
        "preset": dict(preset="reference"),
        "weights": dict(backbone=BackboneSpec("vlprompt-test-tiny", "other-tag")),
    }
    for what, change in changed.items():
        other = plan(toy_registry, methods=["coop"], protocols=["few_shot"], shots=[1], **change)
        assert not ids(other) & base, what
    monkeypatch.setattr(planner, "ENGINE_VERSION", "test")
    engine = plan(toy_registry, methods=["coop"], protocols=["few_shot"], shots=[1])
    assert not ids(engine) & base


def test_a_changed_template_is_a_new_run(toy_registry, plan):
    before = ids(plan(toy_registry, methods=["zeroshot"], protocols=["few_shot"]))
    entry = toy_registry.datasets.entries[TOY_DATASET]
    entry.value = dataclasses.replace(entry.value, template="a drawing of a {}.")
    after = ids(plan(toy_registry, methods=["zeroshot"], protocols=["few_shot"]))
    assert len(before & after) == len(before) // 2  # toy_target's runs are unchanged


def test_variants_and_overrides_resolve_per_method(toy_registry, plan):
    groups = plan(
        toy_registry,
        protocols=["few_shot"],
        shots=[1],
        overrides={"coop": {"epochs": "3"}, "coop:csc": {"epochs": "5"}},
    )
    configs = {g[0].method: g[0].config for g in groups if g[0].dataset == TOY_DATASET}
    assert configs["coop"].epochs == 3 and not configs["coop"].class_specific
    assert configs["coop:csc"].epochs == 5 and configs["coop:csc"].class_specific
    with pytest.raises(UserError, match="not among the methods run"):
        plan(toy_registry, overrides={"kgcoop": {"epochs": "3"}})
    with pytest.raises(UserError, match="unknown coop variant 'cs'"):
        plan(toy_registry, methods=["coop:cs"])
    with pytest.raises(UserError, match="epochs must be at least 0"):
        plan(toy_registry, overrides={"coop": {"epochs": "-3"}})


class _BrokenConfig:
    """A third-party method whose ``config`` raises on the cross-dataset protocol only."""

    name, version = "broken", "1"

    @dataclasses.dataclass(frozen=True)
    class Config:
        epochs: int = 1

    def config(self, setting):
        if setting.protocol == "cross_dataset":
            raise RuntimeError("bug in the plugin")
        return self.Config()

    def training_views(self, config):
        return ()

    def train(self, runs, config, engine):
        return []


BROKEN = _BrokenConfig()


class _BrokenPlugin:
    @hookimpl
    def register_methods(self, register):
        register(MethodSpec("broken", "config raises", "tests.test_planner:BROKEN"))


def test_a_method_whose_config_raises_is_left_out_whole_and_said(toy_plugin, plan):
    from benchmark.registry import build_registry

    registry = build_registry(autoload=False, extra_plugins=[toy_plugin, _BrokenPlugin()])
    with pytest.warns(planner.LeftOutWarning) as caught:
        groups = plan(registry, methods=["zeroshot", "broken"])
    (warning,) = caught
    assert str(warning.message) == (
        "method 'broken' (_BrokenPlugin (inline unversioned)) is broken: configuring "
        f"cross_dataset · {TOY_DATASET} · 1 shot raised RuntimeError: bug in the plugin; its "
        "cells are left out"
    )
    # its few-shot cells, configured before the failure, are left out too
    assert {cell.method for group in groups for cell in group} == {"zeroshot"}
    with pytest.raises(UserError, match=r"method 'broken' .* is broken: configuring") as error:
        plan(registry, methods=["broken"])  # nothing else asked for: an error, not a warning
    assert error.value.exit_code == 4


def test_a_protocol_whose_training_datasets_raises_is_left_out(toy_plugin, plan):
    from vlprompt_protocols.few_shot import FewShot

    from benchmark.registry import build_registry

    class Broken(FewShot):
        name = "broken_protocol"

        def training_datasets(self, selected, catalog):
            raise KeyError("source")

    class Plugin:
        @hookimpl
        def register_protocols(self, register):
            register(Broken())

    registry = build_registry(autoload=False, extra_plugins=[toy_plugin, Plugin()])
    with pytest.warns(planner.LeftOutWarning, match="its training_datasets raised KeyError"):
        groups = plan(registry, protocols=["few_shot", "broken_protocol"])
    assert {cell.protocol for group in groups for cell in group} == {"few_shot"}
    with pytest.raises(UserError, match=r"protocol 'broken_protocol' .* is broken") as error:
        plan(registry, protocols=["broken_protocol"])
    assert error.value.exit_code == 4
