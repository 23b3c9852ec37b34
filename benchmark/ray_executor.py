"""The Ray executor: the groups of a run as Ray tasks, on a local Ray instance or a cluster.

Each group (the runs of one cell that differ only by seed) is one task asking for one GPU,
or one CPU when the run's device is the CPU. Before the groups start, one task per dataset
extracts every image feature the run's groups read into the feature cache, so each
(backbone, dataset, view) is encoded once per run rather than once per task; a group's task
waits for the extraction tasks of the datasets it reads. The cache folder must therefore be
one shared filesystem path that every node sees.

The driver (the process running ``python -m benchmark run``) plans, claims and writes the
results, exactly as the local executor does: tasks return their rows, so the results folder
needs to exist on the driver's machine only. It keeps as many groups in flight as the
cluster has GPUs (or CPUs), taking the next one from the queue as each ends, so another
runner on the same results folder still shares the work. A task that dies (its worker
crashed, its node was lost) is a failed group like one whose method raised.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from benchmark.datasets.spec import Sample
from benchmark.errors import EXIT_ENVIRONMENT, UserError
from benchmark.planner import Cell
from benchmark.registry import Registry
from benchmark.request import RunRequest
from benchmark.runner import FeatureRequest, Outcome, Runner, WorkQueue

INSTALL_HINT = "pip install 'vlprompt-bench[ray]'"

#: Extraction requests of one dataset: (views, augmentation, seed) -> the samples to encode.
Needs = dict[FeatureRequest, list[Sample]]


def import_ray() -> ModuleType:
    """The ``ray`` module, or the one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError(
            f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}", EXIT_ENVIRONMENT
        ) from None
    return ray


@dataclass(frozen=True)
class _Job:
    """What a task needs to rebuild the driver's runner (the registry pickles as its recipe)."""

    token: str
    registry: Registry
    request: RunRequest


_RUNNERS: dict[str, Runner] = {}


def _runner(job: _Job) -> Runner:
    """The worker process's runner for ``job``, built once per process and job."""
    if job.token not in _RUNNERS:
        _RUNNERS.clear()
        _RUNNERS[job.token] = Runner(job.registry, job.request, progress=lambda message: None)
    return _RUNNERS[job.token]


def _extract(job: _Job, needs: Needs) -> str:
    """Task: encode the features of one dataset; returns "" or why it could not.

    A failure other than a data error does not stop the run: the groups then extract what
    they miss themselves, and fail (or not) on their own.
    """
    features = _runner(job).engine.features
    try:
        for (views, augmentation, seed), samples in needs.items():
            features.ensure(samples, views, augmentation, seed)
    except UserError:
        raise
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return ""


def _execute(job: _Job, group: list[Cell], *extracted: str) -> Outcome:
    """Task: train and evaluate one group (after its datasets' extraction tasks ended)."""
    return _runner(job).execute(group)


class RayExecutor:
    """Runs groups as Ray tasks; ``address`` is an existing cluster (``auto``,
    ``host:port`` or ``ray://host:port``), ``None`` starts a local Ray instance for the run.

    When Ray is already initialised in this process (a notebook that called ``ray.init``),
    that connection is used and left open.
    """

    def __init__(self, address: str | None = None) -> None:
        self.ray = import_ray()
        self.address = address

    def _connect(self) -> bool:
        """Connect (or start a local instance); True when this call did, so must shut down."""
        if self.ray.is_initialized():
            return False
        try:
            self.ray.init(
                # "local" starts a new instance even where a cluster runs on this machine.
                address=self.address or "local",
                include_dashboard=False if self.address is None else None,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            raise UserError(f"cannot start or reach {where}: {exc}", EXIT_ENVIRONMENT) from exc
        return True

    def _resources(self, device: str) -> tuple[dict[str, Any], int]:
        """Each task's resource request, and how many such tasks the cluster runs at once."""
        if device.startswith("cuda:"):
            raise UserError(
                f"--device {device}: with --executor ray give --device cuda; Ray gives each "
                "task one GPU of its own"
            )
        kind = "GPU" if device == "cuda" else "CPU"
        slots = int(self.ray.cluster_resources().get(kind, 0))
        if slots == 0:
            raise UserError(f"--device {device}: the Ray cluster has no {kind}", EXIT_ENVIRONMENT)
        return ({"num_gpus": 1} if kind == "GPU" else {"num_cpus": 1}), slots

    def execute(self, runner: Runner, queue: WorkQueue) -> Iterator[tuple[list[Cell], Outcome]]:
        if not queue.pending:
            return
        ray = self.ray
        started = self._connect()
        in_flight: dict[Any, list[Cell]] = {}
        try:
            resources, slots = self._resources(runner.request.device)
            # Failed tasks are not retried by Ray: the runner retries failed groups.
            options = dict(resources, max_retries=0)
            extract = ray.remote(_extract).options(**options)
            execute = ray.remote(_execute).options(**options)
            job = ray.put(_Job(uuid.uuid4().hex, runner.registry, runner.request))
            needs = _merge(runner.feature_needs(group) for group in queue.pending)
            extracting = {name: extract.remote(job, views) for name, views in needs.items()}
            runner.progress(
                f"ray: {slots} {'GPU' if 'num_gpus' in resources else 'CPU'} slots; extracting "
                f"features of {len(extracting)} datasets, then {len(queue.pending)} groups"
            )
            while True:
                while len(in_flight) < slots and (group := queue.take()) is not None:
                    waits = [extracting[name] for name in runner.feature_needs(group)]
                    in_flight[execute.remote(job, group, *waits)] = group
                if not in_flight:
                    break
                [ready], _ = ray.wait(list(in_flight), num_returns=1)
                group = in_flight.pop(ready)
                yield group, self._outcome(ready)
            for error in ray.get(list(extracting.values())):
                if error:
                    runner.progress(f"  warning: a feature extraction task failed: {error}")
        finally:
            for ref in in_flight:
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()

    def _outcome(self, ref) -> Outcome:
        """A finished task's outcome; a task that died is a failed group."""
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, UserError):
                raise exc.cause from None
            return _failure(exc)
        except self.ray.exceptions.RayError as exc:
            return _failure(exc)


def _failure(exc: BaseException) -> Outcome:
    text = str(exc).strip()
    return Outcome([], f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}", text)


def _merge(per_group: Iterator[dict[str, Needs]]) -> dict[str, Needs]:
    """Merge groups' feature needs by dataset and request, each image once."""
    merged: dict[str, dict[FeatureRequest, dict[str, Sample]]] = {}
    for needs in per_group:
        for name, by_request in needs.items():
            for request, samples in by_request.items():
                target = merged.setdefault(name, {}).setdefault(request, {})
                target.update((s.path, s) for s in samples)
    return {
        name: {request: list(samples.values()) for request, samples in by_request.items()}
        for name, by_request in merged.items()
    }
