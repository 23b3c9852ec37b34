"""The runner end to end on generated data and the tiny model."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from benchmark.errors import UserError
from benchmark.hookspecs import hookimpl
from benchmark.registry import MethodSpec, build_registry
from benchmark.runner import Runner
from tests.conftest import TOY_DATASET, toy_request


def test_run_writes_rows_and_a_second_run_runs_nothing(toy_registry, tiny_backbone, tmp_path):
    request = toy_request(tiny_backbone, tmp_path)
    summary = Runner(toy_registry, request, progress=lambda m: None).run()
    assert (summary.succeeded, summary.skipped, summary.failed) == (4, 0, [])
    table = pd.read_parquet(tmp_path / "results" / "runs")
    assert len(table) == summary.rows == 4
    assert set(table.method) == {"zeroshot", "coop"}
    assert set(table.seed) == {1, 2}
    assert table.value.between(0, 100).all()
    assert (table.n_eval == 20).all()
    assert table.plugin.unique().tolist() == ["vlprompt-bench"]

    again = Runner(toy_registry, request, progress=lambda m: None).run()
    assert (again.succeeded, again.skipped, again.rows) == (0, 4, 0)
    assert len(pd.read_parquet(tmp_path / "results" / "runs")) == 4


def test_a_changed_config_is_a_new_run(toy_registry, tiny_backbone, tmp_path):
    Runner(
        toy_registry,
        toy_request(tiny_backbone, tmp_path, methods=["coop"]),
        progress=lambda m: None,
    ).run()
    changed = toy_request(
        tiny_backbone, tmp_path, methods=["coop"], overrides={"coop": {"epochs": "2"}}
    )
    summary = Runner(toy_registry, changed, progress=lambda m: None).run()
    assert summary.succeeded == 2


class NearestMean:
    """A third method written as an inline plugin: class means of the training features."""

    name = "nearest_mean"
    version = "1"

    from dataclasses import dataclass as _dataclass

    @_dataclass(frozen=True)
    class Config:
        temperature: float = 1.0

    def config(self, setting):
        return self.Config()

    def training_views(self, config):
        return ()  # the test view only

    def train(self, runs, config, engine):
        classifiers = []
        for run in runs:
            features = torch.nn.functional.normalize(engine.features.features(run.samples), dim=-1)
            labels = torch.tensor([s.label for s in run.samples])
            means = torch.stack(
                [features[labels == k].mean(0) for k in range(len(run.classes.names))]
            )
            classifiers.append(_Means(means, run.classes))
        return classifiers


class _Means:
    def __init__(self, means, classes):
        self.means, self.classes = means, classes
        self.diagnostics = {}

    def scores(self, features, classes):
        if classes.names != self.classes.names:
            return None
        return torch.nn.functional.normalize(features, dim=-1) @ self.means.T


class InlineMethodPlugin:
    @hookimpl
    def register_methods(self, register):
        register(MethodSpec("nearest_mean", "class means of features", NearestMean()))


def test_inline_plugin_method_runs_through_the_whole_benchmark(toy_plugin, tiny_backbone, tmp_path):
    registry = build_registry(autoload=False, extra_plugins=[toy_plugin, InlineMethodPlugin()])
    request = toy_request(
        tiny_backbone, tmp_path, methods=["nearest_mean"], protocols=["few_shot", "base_to_new"]
    )
    summary = Runner(registry, request, progress=lambda m: None).run()
    assert summary.failed == []
    table = pd.read_parquet(tmp_path / "results" / "runs")
    assert set(table.protocol) == {"few_shot", "base_to_new"}
    # It cannot score unseen classes: base-to-new has base rows and no new (nor H) rows.
    b2n = table[table.protocol == "base_to_new"]
    assert set(b2n.split) == {"base"}
    assert (table.plugin == "inline").all()


class Exploding:
    name = "exploding"
    version = "1"
    Config = NearestMean.Config

    def config(self, setting):
        return self.Config()

    def training_views(self, config):
        return ()

    def train(self, runs, config, engine):
        raise FloatingPointError("loss became nan")


class ExplodingPlugin:
    @hookimpl
    def register_methods(self, register):
        register(MethodSpec("exploding", "always fails", Exploding()))


def test_a_failing_method_is_recorded_and_the_others_go_on(toy_plugin, tiny_backbone, tmp_path):
    registry = build_registry(autoload=False, extra_plugins=[toy_plugin, ExplodingPlugin()])
    request = toy_request(tiny_backbone, tmp_path, methods=["exploding", "zeroshot"])
    summary = Runner(registry, request, progress=lambda m: None).run()
    assert summary.succeeded == 2 and len(summary.failed) == 2
    table = pd.read_parquet(tmp_path / "results" / "runs")
    failed = table[table.status == "failed"]
    assert len(failed) == 2 and failed.error.str.contains("loss became nan").all()
    retry = Runner(registry, request, progress=lambda m: None).run()
    assert retry.skipped == 2 and len(retry.failed) == 2  # only the failed cells ran again


def test_unknown_set_target_is_an_error(toy_registry, tiny_backbone, tmp_path):
    request = toy_request(tiny_backbone, tmp_path, overrides={"cop": {"epochs": "1"}})
    with pytest.raises(UserError, match="not among the methods"):
        Runner(toy_registry, request, progress=lambda m: None).plan()


def test_protocols_plan_the_expected_evaluations(toy_registry, tiny_backbone, tmp_path):
    request = toy_request(
        tiny_backbone,
        tmp_path,
        methods=["zeroshot"],
        protocols=["few_shot", "cross_dataset", "domain_generalization"],
        datasets=[TOY_DATASET, "toy_target", "toy_shift"],
        seeds=[1],
    )
    Runner(toy_registry, request, progress=lambda m: None).run()
    table = pd.read_parquet(tmp_path / "results" / "runs")
    pairs = set(zip(table.protocol, table.dataset, table.eval_dataset, strict=True))
    assert pairs == {
        ("few_shot", TOY_DATASET, TOY_DATASET),
        ("few_shot", "toy_target", "toy_target"),
        ("cross_dataset", TOY_DATASET, TOY_DATASET),
        ("cross_dataset", TOY_DATASET, "toy_target"),
        ("domain_generalization", TOY_DATASET, TOY_DATASET),
        ("domain_generalization", TOY_DATASET, "toy_shift"),
    }


class Flaky(Exploding):
    """Fails its first training call (a lost GPU, say), then trains like NearestMean."""

    name = "flaky"

    def __init__(self, marker):
        self.marker = marker

    def train(self, runs, config, engine):
        if not self.marker.exists():
            self.marker.touch()
            raise RuntimeError("CUDA error: device lost")
        return NearestMean().train(runs, config, engine)


class FlakyPlugin:
    def __init__(self, marker):
        self.marker = marker

    @hookimpl
    def register_methods(self, register):
        register(MethodSpec("flaky", "fails once", Flaky(self.marker)))


@pytest.mark.parametrize(("retries", "failed"), [(0, 2), (1, 0)])
def test_retries_run_a_failed_group_again(toy_plugin, tiny_backbone, tmp_path, retries, failed):
    registry = build_registry(
        autoload=False, extra_plugins=[toy_plugin, FlakyPlugin(tmp_path / "failed-once")]
    )
    request = toy_request(tiny_backbone, tmp_path, methods=["flaky"], retries=retries)
    progress: list[str] = []
    summary = Runner(registry, request, progress=progress.append).run()
    assert (len(summary.failed), summary.succeeded) == (failed, 2 - failed)
    assert sum("trying again" in line for line in progress) == retries
    table = pd.read_parquet(tmp_path / "results" / "runs")
    assert len(table) == 2 and (table.status == ("failed" if failed else "ok")).all()


class CountingNearestMean(NearestMean):
    """NearestMean that counts its training calls and the datasets its classifiers score."""

    name = "counting"

    def __init__(self) -> None:
        self.calls = 0
        self.scored: list[str] = []

    def train(self, runs, config, engine):
        self.calls += 1
        classifiers = super().train(runs, config, engine)
        for classifier in classifiers:
            scores = classifier.scores

            def counted(features, classes, scores=scores):
                self.scored.append(classes.dataset)
                return scores(features, classes)

            classifier.scores = counted
        return classifiers


def test_protocols_training_on_the_same_data_train_once(toy_plugin, tiny_backbone, tmp_path):
    method = CountingNearestMean()

    class Plugin:
        @hookimpl
        def register_methods(self, register):
            register(MethodSpec("counting", "counts its training calls", method))

    registry = build_registry(autoload=False, extra_plugins=[toy_plugin, Plugin()])
    request = toy_request(
        tiny_backbone,
        tmp_path,
        methods=["counting"],
        protocols=["cross_dataset", "domain_generalization"],
        datasets=[TOY_DATASET, "toy_target", "toy_shift"],
        seeds=[1],
    )
    summary = Runner(registry, request, progress=lambda m: None).run()
    assert summary.failed == [] and summary.succeeded == 2
    assert method.calls == 1  # the source model of cross-dataset serves domain generalisation
    # ... and scores the source's test split once for both
    assert sorted(method.scored) == sorted([TOY_DATASET, "toy_target", "toy_shift"])
    table = pd.read_parquet(tmp_path / "results" / "runs")
    assert set(table.protocol) == {"cross_dataset", "domain_generalization"}
    assert table.groupby("protocol").train_seconds.first().nunique() == 1


def test_a_cell_held_by_a_live_runner_is_reported_not_done(toy_registry, tiny_backbone, tmp_path):
    import json
    import subprocess
    import sys

    from benchmark.results import claim_owner

    request = toy_request(tiny_backbone, tmp_path, methods=["zeroshot"], seeds=[1])
    runner = Runner(toy_registry, request, progress=lambda m: None)
    ((cell,),) = runner.plan()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        claim = tmp_path / "results" / "runs" / ".claims" / f"{cell.run_id}.claim"
        claim.parent.mkdir(parents=True)
        claim.write_text(json.dumps(claim_owner(other.pid)))
        summary = runner.run()
        assert (summary.succeeded, summary.skipped, summary.failed) == (0, 0, [])
        ((held, holder),) = summary.held
        assert held.run_id == cell.run_id and f"process {other.pid}" in holder
    finally:
        other.kill()
        other.wait()
    # its owner is gone: the claim is stale, and the cell runs
    again = Runner(toy_registry, request, progress=lambda m: None).run()
    assert (again.succeeded, again.held) == (1, [])


class _ExitingListener:
    @hookimpl
    def on_result(self, rows):
        raise SystemExit(0)


def test_an_on_result_hook_that_exits_never_ends_the_run(toy_plugin, tiny_backbone, tmp_path):
    registry = build_registry(autoload=False, extra_plugins=[toy_plugin, _ExitingListener()])
    request = toy_request(tiny_backbone, tmp_path, methods=["zeroshot"])
    progress: list[str] = []
    summary = Runner(registry, request, progress=progress.append).run()
    assert (summary.succeeded, summary.failed) == (2, [])
    warnings = [line for line in progress if "on_result hook failed: SystemExit" in line]
    assert len(warnings) == 2


def test_a_seed_or_shot_count_given_twice_is_one_cell(toy_registry, tiny_backbone, tmp_path):
    request = toy_request(tiny_backbone, tmp_path, methods=["zeroshot"], seeds=[1, 1], shots=[2, 2])
    summary = Runner(toy_registry, request, progress=lambda m: None).run()
    assert (summary.planned, summary.succeeded, summary.held) == (1, 1, [])


class _BrokenProtocol:
    """A protocol whose planning raises: its cells fail, the others run."""

    name, summary, default_shots = "broken_protocol", "raises when planning", (2,)

    def training_datasets(self, selected, catalog):
        return [TOY_DATASET]

    def plan(self, dataset, shots, seed, catalog):
        raise RuntimeError("no such split")

    def derived(self, accuracy):
        return []


class _BrokenProtocolPlugin:
    @hookimpl
    def register_protocols(self, register):
        register(_BrokenProtocol())


def test_a_protocol_that_cannot_plan_fails_its_cells_only(toy_plugin, tiny_backbone, tmp_path):
    registry = build_registry(autoload=False, extra_plugins=[toy_plugin, _BrokenProtocolPlugin()])
    request = toy_request(
        tiny_backbone, tmp_path, methods=["zeroshot"], protocols=["broken_protocol", "few_shot"]
    )
    summary = Runner(registry, request, progress=lambda m: None).run()
    assert summary.succeeded == 2
    assert [message for _, message in summary.failed] == ["RuntimeError: no such split"] * 2


def test_a_weights_digest_is_computed_once_per_file(tmp_path):
    import os

    from benchmark.backbone import file_digest

    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights one")
    stat = weights.stat()
    first = file_digest(weights)
    # other bytes of the same size and time: the cached digest is what is returned (the
    # file was not read again); a new modification time makes it read the file again
    weights.write_bytes(b"weights two")
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert file_digest(weights) == first
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert file_digest(weights) != first


def test_each_dataset_is_fingerprinted_once_per_run(
    toy_registry, tiny_backbone, tmp_path, monkeypatch
):
    import benchmark.catalog

    digested: list[str] = []
    original = benchmark.catalog.dataset_fingerprint

    def counting(spec, splits):
        digested.append(spec.name)
        return original(spec, splits)

    monkeypatch.setattr(benchmark.catalog, "dataset_fingerprint", counting)
    request = toy_request(
        tiny_backbone,
        tmp_path,
        methods=["zeroshot", "coop"],
        protocols=["few_shot", "cross_dataset", "domain_generalization"],
        datasets=[TOY_DATASET, "toy_target", "toy_shift"],
        shots=[1, 2],
    )
    groups = Runner(toy_registry, request, progress=lambda m: None).plan()
    assert len(groups) == 2 * (2 * 2 + 2 + 2)
    assert sorted(digested) == sorted([TOY_DATASET, "toy_target", "toy_shift"])
