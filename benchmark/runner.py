"""The runner: runs the planned matrix (:mod:`benchmark.planner`), skips finished runs,
trains seeds together, evaluates, and writes one result file per run, after the run's
artifact (its learned tensors, :mod:`benchmark.artifacts`) where it has one.

Cells that differ only by seed form a group and train in one call of the method. A group
that raises is recorded as failed, one row per run with the error, and the other groups go
on; the next run retries failed cells (``retries`` retries them in the same run). Cells that
another live runner has claimed are left to it and reported as held.

Where the groups run is an executor's choice: one after the other in this process
(:class:`LocalExecutor`), or as Ray tasks (:mod:`benchmark.ray_executor`). Planning, claims
(:class:`WorkQueue`), training with evaluation (:meth:`Runner.execute`) and writing the
results are the runner's, whichever executor runs the groups.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import subprocess
import time
import traceback
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from benchmark import __version__, planner
from benchmark.catalog import DatasetCatalog
from benchmark.config import config_json
from benchmark.datasets.spec import REFERENCE_AUGMENTATION, Augmentation, DataContext, Sample
from benchmark.errors import UserError, first_line
from benchmark.planner import Cell, check_not_empty, method_of
from benchmark.progress import MatrixProgress
from benchmark.protocol import Plan
from benchmark.registry import Registry
from benchmark.request import RunRequest, split_variant
from benchmark.results import ResultRow, ResultStore

#: Trained classifiers kept for protocols that train on the same data (see Runner._train).
TRAINED_KEPT = 32

#: Image features asked for at once: views, the augmentation that makes training views and
#: the seed whose draws they are.
FeatureRequest = tuple[tuple[int, ...], Augmentation, int]


@dataclass
class Summary:
    """What a run did: cells planned, skipped (done before), run, failed, and ``held``: left
    to another runner whose live claim holds them (each with that runner's description)."""

    planned: int = 0
    skipped: int = 0
    succeeded: int = 0
    failed: list[tuple[Cell, str]] = field(default_factory=list)
    held: list[tuple[Cell, str]] = field(default_factory=list)
    rows: int = 0


@dataclass
class Outcome:
    """What running one group gave: each run's rows, or the error that stopped the group."""

    rows: list[list[ResultRow]]
    error: str = ""  # "ExceptionType: message" when the group failed
    detail: str = ""  # the end of its traceback, for the failed rows
    artifacts: list[bytes | None] = field(default_factory=list)  # each run's, if it has one


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


def device_label(device: str) -> str:
    """The ``device`` column: the device, with the machine and its cores for the CPU."""
    if device == "cpu":
        return f"cpu ({platform.machine()}, {os.cpu_count()} cores)"
    return device


def made_by(provider: Any, device: str) -> dict[str, Any]:
    """The columns of a result row that say what made it, where and when: the suite's
    version, the method's plugin (``provider``: its distribution and version), the commit,
    the device and the time."""
    return dict(
        suite_version=__version__,
        plugin=provider.distribution,
        plugin_version=provider.version,
        git_commit=git_commit(),
        device=device_label(device),
        timestamp=datetime.now(timezone.utc),
    )


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
        self._trained: OrderedDict[tuple, tuple[list[Any], float]] = OrderedDict()
        self._scored: weakref.WeakKeyDictionary[Any, dict[tuple, float | None]] = (
            weakref.WeakKeyDictionary()
        )

    # -- planning -------------------------------------------------------------------------

    def plan(self) -> list[list[Cell]]:
        """The groups of cells to run (:func:`benchmark.planner.plan`)."""
        return planner.plan(self.registry, self.request, self.catalog)

    def _method(self, name: str):
        return method_of(self.registry, name)

    def _trains(self, cell: Cell) -> bool:
        """Whether ``cell`` trains on augmented views (a method whose ``training_views``
        raises counts as training: its group fails when it runs, saying why)."""
        try:
            return bool(self._method(cell.method).training_views(cell.config))
        except Exception:
            return True

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

    def run(self, executor: Executor | None = None) -> Summary:
        """Run the planned cells not done yet; ``executor`` runs the groups (default: here)."""
        summary = Summary()
        with planner.planning_warnings():
            groups = self.plan()
        done = set() if self.request.rerun else self.store.done_run_ids()
        summary.planned = sum(len(g) for g in groups)
        todo = []
        for group in groups:
            remaining = [cell for cell in group if cell.run_id not in done]
            summary.skipped += len(group) - len(remaining)
            if remaining:
                todo.append(remaining)
        # Cells that train on no augmented view (zero-shot, a linear probe) take seconds: they
        # run first, so that their results do not wait behind the long ones.
        todo.sort(key=lambda group: self._trains(group[0]))
        if todo:
            self.store.ensure_writable()
        n_todo = sum(len(g) for g in todo)
        self.progress(
            f"{summary.planned} runs planned, {summary.skipped} already done, {n_todo} to run"
        )
        queue = WorkQueue(self, todo, summary)
        try:
            for group, outcome in (executor or LocalExecutor()).execute(self, queue):
                if outcome.error and queue.retry(group):
                    self.progress(f"  failed: {outcome.error}; trying again")
                    continue
                self._record(group, outcome, summary)
                queue.finish(group)
        finally:
            queue.release_all()
        # Cells another runner finished meanwhile are done, not held.
        finished = [cell for cell, _ in summary.held if self.store.is_done(cell.run_id)]
        summary.skipped += len(finished)
        summary.held = [(cell, who) for cell, who in summary.held if cell not in finished]
        return summary

    def execute(self, group: list[Cell]) -> Outcome:
        """Train and evaluate one claimed group; a method that raises gives a failed outcome."""
        try:
            return self._run_group(group)
        except UserError:
            raise
        except Exception as exc:  # a failing method must not stop the others
            return Outcome([], f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=-3))

    def _record(self, group: list[Cell], outcome: Outcome, summary: Summary) -> None:
        """Write a finished group's result files: its rows, or one failed row per run."""
        if outcome.error:
            for cell in group:
                summary.failed.append((cell, outcome.error))
                self.store.write_run(cell.run_id, [self._failed_row(cell, outcome.detail)])
            self.progress(f"  failed: {outcome.error}")
            return
        artifacts = outcome.artifacts or [None] * len(group)
        for cell, rows, artifact in zip(group, outcome.rows, artifacts, strict=True):
            if artifact is not None:
                rows = self._save_artifact(cell, rows, artifact)
            self.store.write_run(cell.run_id, rows)
            summary.rows += len(rows)
            summary.succeeded += 1
            self._announce(rows)

    def feature_needs(self, group: list[Cell]) -> dict[str, dict[FeatureRequest, list[Sample]]]:
        """The image features a group reads, by dataset and (views, augmentation), for
        extracting them ahead.

        Every split is read in the test view; the training images also in the training views
        the method reads (``Method.training_views``), made by the training data's
        augmentation with the draws of the run's seed.
        """
        return self._feature_needs(group, self._plans(group))

    def _plans(self, group: list[Cell]) -> list[Plan]:
        protocol = self.registry.protocols.get(group[0].protocol)
        return [protocol.plan(c.dataset, c.shots, c.seed, self.catalog) for c in group]

    def _feature_needs(
        self, group: list[Cell], plans: list[Plan]
    ) -> dict[str, dict[FeatureRequest, list[Sample]]]:
        from benchmark.views import TEST_VIEW

        head = group[0]
        training = tuple(self._method(head.method).training_views(head.config))
        test = ((TEST_VIEW,), REFERENCE_AUGMENTATION, 0)
        needs: dict[str, dict[FeatureRequest, list[Sample]]] = {}
        for cell, plan in zip(group, plans, strict=True):
            train = needs.setdefault(cell.dataset, {})
            train.setdefault(test, []).extend((*plan.train.samples, *plan.train.val))
            if training:
                views = (training, plan.train.augmentation, cell.seed)
                train.setdefault(views, []).extend(plan.train.samples)
            for split in plan.evals:
                needs.setdefault(split.eval_dataset, {}).setdefault(test, []).extend(split.samples)
        return needs

    def _announce(self, rows: list[ResultRow]) -> None:
        try:
            self.registry.plugin_manager.hook.on_result(rows=[row.as_dict() for row in rows])
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit included: a plugin never ends the run
            self.progress(
                f"  warning: an on_result hook failed: {type(exc).__name__}: {first_line(exc)}"
            )

    def _run_group(self, group: list[Cell]) -> Outcome:
        head = group[0]
        method = self._method(head.method)
        plans = self._plans(group)
        for plan in plans:
            check_not_empty(plan, head.protocol)
        engine = self.engine
        # Every image the group reads is read before it trains: an unreadable image is a
        # data error before any training, not a failed cell after it.
        for requests in self._feature_needs(group, plans).values():
            for (views, augmentation, seed), samples in requests.items():
                engine.features.ensure(samples, views, augmentation, seed)
        # Runs train together only when their training sets have the same size.
        by_size: dict[int, list[int]] = {}
        for i, plan in enumerate(plans):
            by_size.setdefault(len(plan.train.samples), []).append(i)
        classifiers: list[Any] = [None] * len(group)
        seconds = [0.0] * len(group)
        for indices in by_size.values():
            runs = tuple(plans[i].train for i in indices)
            trained, elapsed = self._train(head.method, method, runs, head.config, engine)
            for i, classifier in zip(indices, trained, strict=True):
                classifiers[i], seconds[i] = classifier, elapsed / len(indices)
        rows = [
            self._evaluate(cell, plan, classifier, train_seconds)
            for cell, plan, classifier, train_seconds in zip(
                group, plans, classifiers, seconds, strict=True
            )
        ]
        artifacts = [
            self._artifact(cell, plan, classifier)
            for cell, plan, classifier in zip(group, plans, classifiers, strict=True)
        ]
        return Outcome(rows, artifacts=artifacts)

    # -- artifacts: what each run learned, saved next to its results (benchmark.artifacts) --

    def _artifact(self, cell: Cell, plan: Plan, classifier) -> bytes | None:
        """The serialised artifact of a trained run; None when it learned nothing to save or
        saving is off."""
        if not self.request.artifacts:
            return None
        from benchmark import artifacts

        provider = self.registry.methods.provider(split_variant(cell.method)[0])
        method = self._method(cell.method)
        provenance = artifacts.provenance_of(
            cell, method, self.engine.backbone, plan.train.classes, provider
        )
        return artifacts.serialise(classifier, provenance)

    def _save_artifact(self, cell: Cell, rows: list[ResultRow], data: bytes) -> list[ResultRow]:
        """Write a run's artifact (before its results, which then point to it)."""
        from benchmark import artifacts

        artifacts.write(self.store.root, cell.run_id, data)
        return [
            dataclasses.replace(row, artifact=artifacts.relative_path(cell.run_id)) for row in rows
        ]

    def _train(self, name: str, method, runs: tuple, config, engine) -> tuple[list[Any], float]:
        """The method's classifiers for ``runs`` and the seconds their training took.

        Protocols that train on the same data (cross-dataset and domain generalisation both
        train on the source) get the classifiers already trained for it in this process:
        the same method, configuration and training data give the same model.
        """
        key = (name, config_json(config), runs)
        if key not in self._trained:
            start = time.perf_counter()
            trained = method.train(list(runs), config, engine)
            self._trained[key] = (trained, time.perf_counter() - start)
            while len(self._trained) > TRAINED_KEPT:
                self._trained.popitem(last=False)
        return self._trained[key]

    def _evaluate(self, cell: Cell, plan: Plan, classifier, train_seconds: float):
        start = time.perf_counter()
        measured: list[tuple[str, str, str, float, int]] = []
        accuracy: dict[tuple[str, str], float] = {}
        for split in plan.evals:
            acc = self._accuracy(classifier, split)
            if acc is None:
                continue  # this method cannot score these classes: no row, not a wrong one
            accuracy[split.eval_dataset, split.split] = acc
            measured.append((split.eval_dataset, split.split, "accuracy", acc, len(split.samples)))
        protocol = self.registry.protocols.get(cell.protocol)
        for metric in protocol.derived(accuracy):
            measured.append((metric.eval_dataset, metric.split, metric.metric, metric.value, 0))
        for key, value in sorted(classifier.diagnostics.items()):
            measured.append((cell.dataset, "train", key, float(value), len(plan.train.samples)))
        eval_seconds = time.perf_counter() - start
        run = self._provenance(cell)
        return [
            ResultRow(
                **run,
                status="ok",
                error="",
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

    def _accuracy(self, classifier, split) -> float | None:
        """Top-1 accuracy (%) of ``classifier`` on ``split``, None if it cannot score its
        classes. A classifier kept for several protocols scores each split once (the source's
        test split is evaluated by few-shot, cross-dataset and domain generalisation alike)."""
        from benchmark.scoring import top1

        key = (split.eval_dataset, split.split, split.classes.names, split.samples)
        try:
            known = self._scored.setdefault(classifier, {})
        except TypeError:  # a classifier that cannot be weakly referenced: no memo
            known = {}
        if key not in known:
            known[key] = top1(classifier, self.engine.features.features(split.samples), split)
        return known[key]

    def _provenance(self, cell: Cell) -> dict[str, Any]:
        """The columns every row of ``cell``'s run shares: what ran, and what made it."""
        provider = self.registry.methods.provider(split_variant(cell.method)[0])
        return dict(
            run_id=cell.run_id,
            method=cell.method,
            protocol=cell.protocol,
            dataset=cell.dataset,
            shots=cell.shots,
            seed=cell.seed,
            backbone=self.request.backbone.name,
            pretrained=self.request.backbone.weights,
            config=config_json(cell.config),
            **made_by(provider, self.request.device),
        )

    def _failed_row(self, cell: Cell, error: str) -> ResultRow:
        return ResultRow(
            **self._provenance(cell),
            status="failed",
            error=error,
            eval_dataset=cell.dataset,
            split="",
            metric="error",
            value=float("nan"),
            n_eval=0,
            train_seconds=float("nan"),
            eval_seconds=float("nan"),
        )


def _label(group: list[Cell]) -> str:
    head = group[0]
    return (
        f"{head.method} · {head.protocol} · {head.dataset} · {head.shots} "
        f"shot{'s' if head.shots != 1 else ''} · "
        f"seeds {','.join(str(c.seed) for c in group)}"
    )


class WorkQueue:
    """The groups an executor runs, each claimed when the executor takes it.

    Taking a group claims its cells; cells another runner holds (reported as held), or
    finished since the plan was made (skipped), are left out. A failed group comes back,
    first in line, while it has retries left (``RunRequest.retries``). Each group taken is
    announced with the matrix's progress (:class:`~benchmark.progress.MatrixProgress`).
    """

    def __init__(self, runner: Runner, groups: list[list[Cell]], summary: Summary) -> None:
        self.pending: deque[list[Cell]] = deque(groups)
        self._runner = runner
        self._summary = summary
        self.progress = MatrixProgress(groups)
        self._again: deque[list[Cell]] = deque()
        self._attempts: dict[str, int] = {}
        self._held: dict[str, list[Cell]] = {}

    def take(self) -> list[Cell] | None:
        """The next group to run, claimed; ``None`` when there is none now."""
        if self._again:
            group = self._again.popleft()
            self._runner.progress(f"[{self.progress.line()}] again: {_label(group)}")
            self.progress.started(group)
            return group
        store = self._runner.store
        while self.pending:
            group = self.pending.popleft()
            ours = []
            for cell in group:
                if not store.claim(cell.run_id):  # another live runner is on it
                    self._summary.held.append((cell, store.holder(cell.run_id)))
                    continue
                # A cell finished by another runner after our plan was made is not ours.
                if not self._runner.request.rerun and store.is_done(cell.run_id):
                    store.release(cell.run_id)
                    self._summary.skipped += 1
                    continue
                ours.append(cell)
            if len(ours) < len(group):
                self.progress.skipped(len(group) - len(ours), group[0].method)
            if ours:
                self._held[ours[0].run_id] = ours
                self._runner.progress(f"[{self.progress.line()}] {_label(ours)}")
                self.progress.started(ours)
                return ours
        return None

    def retry(self, group: list[Cell]) -> bool:
        """Queue a failed group again if it has retries left; False if it has none."""
        key = group[0].run_id
        attempts = self._attempts.get(key, 0)
        if attempts >= self._runner.request.retries:
            return False
        self._attempts[key] = attempts + 1
        self._again.append(group)
        return True

    def finish(self, group: list[Cell]) -> None:
        """Release the claims of a group whose results are written."""
        self.progress.finished(group)
        self._release(self._held.pop(group[0].run_id))

    def release_all(self) -> None:
        """Release every claim still held (the run stopped or was interrupted)."""
        while self._held:
            self._release(self._held.popitem()[1])

    def _release(self, group: list[Cell]) -> None:
        for cell in group:
            self._runner.store.release(cell.run_id)


class Executor(Protocol):
    """Runs the groups of a :class:`WorkQueue` and yields each with its outcome as it ends.

    An executor takes groups with ``queue.take()`` until it returns ``None`` and nothing of
    its own is still running (a failed group may be queued again meanwhile), runs each with
    ``runner.execute`` wherever it likes, and yields ``(group, outcome)``; the runner writes
    the results. A :class:`~benchmark.errors.UserError` raised by a group stops the run.
    """

    def execute(self, runner: Runner, queue: WorkQueue) -> Iterator[tuple[list[Cell], Outcome]]: ...


class LocalExecutor:
    """One group after the other, in this process."""

    def execute(self, runner: Runner, queue: WorkQueue) -> Iterator[tuple[list[Cell], Outcome]]:
        while (group := queue.take()) is not None:
            yield group, runner.execute(group)
