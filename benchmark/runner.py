"""The runner: expands the matrix, skips finished runs, trains seeds together, evaluates,
and writes one result file per run.

A cell is (method, protocol, dataset, shots, seed); its run id is the hash of its fully
resolved configuration. Cells that differ only by seed form a group and train in one call
of the method. A group that raises is recorded as failed, one row per run with the error,
and the other groups go on; the next run retries failed cells.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import subprocess
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmark import __version__
from benchmark.backbone import BackboneSpec
from benchmark.catalog import DatasetCatalog
from benchmark.config import apply_overrides, config_json, run_id
from benchmark.datasets.spec import DataContext
from benchmark.errors import UserError, unknown_name
from benchmark.method import Setting
from benchmark.protocol import Plan
from benchmark.registry import Registry
from benchmark.results import ResultStore

VARIANT_SEPARATOR = ":"


@dataclass(frozen=True)
class RunRequest:
    """Everything ``benchmark run`` was asked for, with defaults already resolved."""

    methods: list[str]
    protocols: list[str]
    datasets: list[str]
    seeds: list[int]
    backbone: BackboneSpec
    results: Path
    cache_dir: Path
    data_root: Path | None = None
    shots: list[int] | None = None
    device: str = "cpu"
    preset: str = "reference"
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    rerun: bool = False


@dataclass
class Cell:
    method: str  # as selected, e.g. "coop" or "coop:csc"
    protocol: str
    dataset: str
    shots: int
    seed: int
    config: Any
    run_id: str


@dataclass
class Summary:
    planned: int = 0
    skipped: int = 0
    succeeded: int = 0
    failed: list[tuple[Cell, str]] = field(default_factory=list)
    rows: int = 0


def split_variant(name: str) -> tuple[str, str | None]:
    base, sep, variant = name.partition(VARIANT_SEPARATOR)
    return base, (variant if sep else None)


@functools.cache
def git_commit() -> str:
    """The commit of the suite's source tree, or "" outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


class Runner:
    def __init__(
        self,
        registry: Registry,
        request: RunRequest,
        progress: Callable[[str], None] = print,
    ) -> None:
        self.registry = registry
        self.request = request
        self.progress = progress
        self.store = ResultStore(request.results)
        context = DataContext(request.data_root, request.cache_dir)
        self.catalog = DatasetCatalog(registry.datasets, context, request.datasets)
        self._engine = None

    # -- planning -------------------------------------------------------------------------

    def _method(self, name: str):
        base, variant = split_variant(name)
        method = self.registry.methods.get(base).load()
        if variant is not None and variant not in method.presets():
            raise unknown_name(f"{base} preset", variant, method.presets())
        return method

    def _config(self, name: str, setting: Setting):
        base, variant = split_variant(name)
        method = self._method(name)
        config = method.config(setting)
        if variant is not None:
            config = dataclasses.replace(config, **method.presets()[variant])
        overrides = self.request.overrides.get(name, self.request.overrides.get(base, {}))
        return apply_overrides(config, base, overrides)

    def plan(self) -> list[list[Cell]]:
        """The groups of cells to run (cells differing only by seed share a group)."""
        request = self.request
        for name in request.overrides:
            if name not in request.methods and split_variant(name)[0] not in request.methods:
                raise UserError(
                    f"--set {name}.*: method {name!r} is not among the methods run "
                    f"({', '.join(request.methods)})"
                )
        groups = []
        for protocol_name in request.protocols:
            protocol = self.registry.protocols.get(protocol_name)
            datasets = protocol.training_datasets(request.datasets, self.catalog)
            for method in request.methods:
                for dataset in datasets:
                    for shots in request.shots or protocol.default_shots:
                        setting = Setting(
                            protocol_name, dataset, shots, request.backbone.name, request.preset
                        )
                        config = self._config(method, setting)
                        version = self._method(method).version
                        group = []
                        for seed in request.seeds:
                            identity = {
                                "method": method,
                                "method_version": version,
                                "config": config_json(config),
                                "protocol": protocol_name,
                                "dataset": dataset,
                                "shots": shots,
                                "seed": seed,
                                "backbone": request.backbone.name,
                                "pretrained": request.backbone.weights,
                            }
                            group.append(
                                Cell(
                                    method,
                                    protocol_name,
                                    dataset,
                                    shots,
                                    seed,
                                    config,
                                    run_id(identity),
                                )
                            )
                        groups.append(group)
        return groups

    # -- execution ------------------------------------------------------------------------

    @property
    def engine(self):
        if self._engine is None:
            from benchmark.backbone import Backbone
            from benchmark.engine import Engine
            from benchmark.features import FeatureCache

            backbone = Backbone(self.request.backbone, self.request.device)
            self._engine = Engine(backbone, FeatureCache(self.request.cache_dir, backbone))
        return self._engine

    def run(self) -> Summary:
        summary = Summary()
        groups = self.plan()
        done = set() if self.request.rerun else self.store.done_run_ids()
        summary.planned = sum(len(g) for g in groups)
        todo = []
        for group in groups:
            remaining = [cell for cell in group if cell.run_id not in done]
            summary.skipped += len(group) - len(remaining)
            if remaining:
                todo.append(remaining)
        if todo:
            self.store.ensure_writable()
        n_todo = sum(len(g) for g in todo)
        self.progress(
            f"{summary.planned} runs planned, {summary.skipped} already done, {n_todo} to run"
        )
        finished = 0
        for group in todo:
            ours = []
            for cell in group:
                if not self.store.claim(cell.run_id):
                    continue  # another runner is on it
                # A cell finished by another runner after our plan was made is not ours.
                if not self.request.rerun and self.store.is_done(cell.run_id):
                    self.store.release(cell.run_id)
                    continue
                ours.append(cell)
            summary.skipped += len(group) - len(ours)
            finished += len(group) - len(ours)
            if ours:
                try:
                    self._run_claimed(ours, summary, finished, n_todo)
                finally:
                    for cell in ours:
                        self.store.release(cell.run_id)
            finished += len(ours)
        return summary

    def _run_claimed(self, group: list[Cell], summary: Summary, finished: int, n_todo: int):
        head = group[0]
        label = (
            f"{head.method} · {head.protocol} · {head.dataset} · {head.shots} shots · "
            f"seeds {','.join(str(c.seed) for c in group)}"
        )
        self.progress(f"[{finished + len(group)}/{n_todo}] {label}")
        try:
            rows_per_run = self._run_group(group)
        except UserError:
            raise
        except Exception as exc:  # a failing method must not stop the others
            message = f"{type(exc).__name__}: {exc}"
            detail = traceback.format_exc(limit=-3)
            for cell in group:
                summary.failed.append((cell, message))
                self.store.write_run(cell.run_id, [self._failed_row(cell, detail)])
            self.progress(f"  failed: {message}")
        else:
            for cell, rows in zip(group, rows_per_run, strict=True):
                self.store.write_run(cell.run_id, rows)
                summary.rows += len(rows)
                summary.succeeded += 1
                self._announce(rows)

    def _announce(self, rows: list[dict[str, Any]]) -> None:
        try:
            self.registry.plugin_manager.hook.on_result(rows=rows)
        except Exception as exc:
            self.progress(f"  warning: an on_result hook failed: {type(exc).__name__}: {exc}")

    def _run_group(self, group: list[Cell]) -> list[list[dict[str, Any]]]:
        head = group[0]
        protocol = self.registry.protocols.get(head.protocol)
        method = self._method(head.method)
        plans = [protocol.plan(c.dataset, c.shots, c.seed, self.catalog) for c in group]
        for plan in plans:
            if not plan.train.samples:
                raise UserError(
                    f"dataset {head.dataset!r} has no training images for {head.protocol}"
                )
        engine = self.engine
        # Runs train together only when their training sets have the same size.
        by_size: dict[int, list[int]] = {}
        for i, plan in enumerate(plans):
            by_size.setdefault(len(plan.train.samples), []).append(i)
        classifiers: list[Any] = [None] * len(group)
        start = time.perf_counter()
        for indices in by_size.values():
            trained = method.train([plans[i].train for i in indices], head.config, engine)
            for i, classifier in zip(indices, trained, strict=True):
                classifiers[i] = classifier
        train_seconds = (time.perf_counter() - start) / len(group)
        return [
            self._evaluate(cell, plan, classifier, train_seconds)
            for cell, plan, classifier in zip(group, plans, classifiers, strict=True)
        ]

    def _evaluate(self, cell: Cell, plan: Plan, classifier, train_seconds: float):
        import torch

        engine = self.engine
        start = time.perf_counter()
        measured: list[tuple[str, str, str, float, int]] = []
        accuracy: dict[tuple[str, str], float] = {}
        for split in plan.evals:
            if not split.samples:
                continue
            features = engine.features.features(split.samples)
            with torch.no_grad():
                scores = classifier.scores(features, split.classes)
            if scores is None:
                continue  # this method cannot score these classes: no row, not a wrong one
            labels = torch.tensor([s.label for s in split.samples], device=scores.device)
            acc = 100.0 * float((scores.argmax(dim=-1) == labels).float().mean())
            accuracy[split.eval_dataset, split.split] = acc
            measured.append((split.eval_dataset, split.split, "accuracy", acc, len(split.samples)))
        protocol = self.registry.protocols.get(cell.protocol)
        for metric in protocol.derived(accuracy):
            measured.append((metric.eval_dataset, metric.split, metric.metric, metric.value, 0))
        for key, value in sorted(classifier.diagnostics.items()):
            measured.append((cell.dataset, "train", key, float(value), len(plan.train.samples)))
        eval_seconds = time.perf_counter() - start
        base = self._base_row(cell, "ok", "")
        return [
            dict(
                base,
                eval_dataset=eval_dataset,
                split=split,
                metric=metric,
                value=value,
                n_eval=n_eval,
                train_seconds=train_seconds,
                eval_seconds=eval_seconds,
            )
            for eval_dataset, split, metric, value, n_eval in measured
        ]

    def _base_row(self, cell: Cell, status: str, error: str) -> dict[str, Any]:
        provider = self.registry.methods.provider(split_variant(cell.method)[0])
        device = self.request.device
        if device == "cpu":
            device = f"cpu ({platform.machine()}, {os.cpu_count()} cores)"
        return {
            "run_id": cell.run_id,
            "method": cell.method,
            "protocol": cell.protocol,
            "dataset": cell.dataset,
            "shots": cell.shots,
            "seed": cell.seed,
            "backbone": self.request.backbone.name,
            "pretrained": self.request.backbone.weights,
            "config": config_json(cell.config),
            "suite_version": __version__,
            "plugin": provider.distribution,
            "plugin_version": provider.version,
            "git_commit": git_commit(),
            "device": device,
            "timestamp": datetime.now(timezone.utc),
            "status": status,
            "error": error,
        }

    def _failed_row(self, cell: Cell, error: str) -> dict[str, Any]:
        return dict(
            self._base_row(cell, "failed", error),
            eval_dataset=cell.dataset,
            split="",
            metric="error",
            value=float("nan"),
            n_eval=0,
            train_seconds=float("nan"),
            eval_seconds=float("nan"),
        )
