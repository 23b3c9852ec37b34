"""A saved run evaluated on datasets' test splits: ``python -m benchmark eval``.

The classifier in a run's artifact (:mod:`benchmark.artifacts`) is rebuilt by its method
(``classifier_from``) on the backbone it was trained with and scores the test split of each
dataset against that dataset's own class names. This is the reference code's eval-only mode:
CoOp's ``load_model`` keeps the learned context and drops the saved class-name token
embeddings, so the prompts are rebuilt for the classes evaluated (KaiyangZhou/CoOp
``trainers/coop.py``). A classifier that cannot score a dataset's classes (a linear probe,
or class-specific context, on classes other than those it was trained on) gives no row
rather than a wrong one.

Each (artifact, dataset) is a run of protocol ``eval``. Its id hashes the artifact's run id
and bytes, the dataset's name and class names, the content fingerprint of its data (as every
run id holds it: its split file or images, and its template) and the engine version:
evaluating again does nothing new, while a changed artifact or changed data is a new run. Its
rows are ordinary result rows: ``method``, ``dataset`` (trained on), ``shots``, ``seed``,
``config``, ``backbone`` and ``pretrained`` are the artifact's, ``eval_dataset`` the dataset
evaluated, ``split`` ``all``, ``artifact`` the artifact's path relative to the results root
(the file name is its run id) and ``train_seconds`` 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark import artifacts
from benchmark.artifacts import Artifact
from benchmark.backbone import Backbone, BackboneSpec
from benchmark.catalog import DatasetCatalog
from benchmark.config import run_id
from benchmark.datasets.imagefolder import WORLD as USER_WORLD
from benchmark.datasets.spec import DataContext
from benchmark.engine import Engine
from benchmark.errors import EXIT_ENVIRONMENT, DataError, UserError
from benchmark.features import FeatureCache
from benchmark.planner import ENGINE_VERSION, method_of
from benchmark.protocol import Classes, EvalSplit
from benchmark.registry import Registry
from benchmark.request import split_variant
from benchmark.results import ResultRow, ResultStore
from benchmark.runner import made_by
from benchmark.scoring import InvalidScores, top1

PROTOCOL = "eval"
SPLIT = "all"


@dataclass(frozen=True)
class EvalRequest:
    """Where to evaluate an artifact: the datasets (:func:`datasets_to_evaluate`), the
    results root receiving the rows, the data and cache folders, the device and the backbone
    (``None``: the one the artifact recorded)."""

    datasets: list[str] | None
    results: Path
    cache_dir: Path
    data_root: Path | None = None
    device: str = "cpu"
    backbone: BackboneSpec | None = None


@dataclass
class EvalSummary:
    """What an evaluation did, by dataset: rows written, already done, or not scorable."""

    written: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    unscorable: list[str] = field(default_factory=list)
    rows: int = 0


def datasets_to_evaluate(
    registry: Registry, artifact: Artifact, patterns: list[str] | None
) -> list[str]:
    """The datasets named by ``patterns`` (wildcards allowed); without them, the datasets of
    your own (``--dataset``), else the dataset the artifact was trained on."""
    if patterns:
        return registry.datasets.select(patterns)
    own = [n for n in registry.datasets if registry.datasets.get(n).world == USER_WORLD]
    if own:
        return own
    trained_on = artifact.provenance.dataset
    if trained_on not in registry.datasets:
        raise UserError(
            f"run {artifact.provenance.run_id} was trained on {trained_on!r}, which is not a "
            f"registered dataset here: give it with --dataset {trained_on}=PATH, or name the "
            "datasets to evaluate on with --datasets"
        )
    return [trained_on]


def evaluation_id(artifact: Artifact, split: EvalSplit, data: str) -> str:
    """The run id of evaluating ``artifact`` on ``split`` of a dataset whose content
    fingerprint is ``data`` (:meth:`~benchmark.catalog.DatasetCatalog.fingerprint`: its
    split file or images, and its template), as the runner's run ids hold it."""
    return run_id(
        {
            "protocol": PROTOCOL,
            "artifact_run_id": artifact.provenance.run_id,
            "artifact_sha256": artifact.digest,
            "eval_dataset": split.eval_dataset,
            "classes": list(split.classes.names),
            "data": data,
            "engine_version": ENGINE_VERSION,
        }
    )


def _test_split(catalog: DatasetCatalog, name: str) -> EvalSplit:
    """The test split of dataset ``name``, scored against its own class names."""
    spec, splits = catalog.spec(name), catalog.splits(name)
    if not splits.test:
        raise DataError(f"dataset {name!r} has no test images to evaluate on")
    return EvalSplit(SPLIT, tuple(splits.test), Classes(name, splits.classnames, spec.template))


def _rebuilt(registry: Registry, artifact: Artifact, request: EvalRequest) -> tuple[Engine, Any]:
    """The engine of the artifact's backbone (checked) and the classifier rebuilt on it."""
    method = method_of(registry, artifact.provenance.method)
    spec = request.backbone or artifacts.backbone_spec(artifact)
    artifacts.check_backbone(artifact, spec)
    backbone = Backbone(spec, request.device)
    engine = Engine(backbone, FeatureCache(request.cache_dir, backbone))
    return engine, artifacts.rebuild(artifact, method, engine)


def evaluate(
    registry: Registry,
    artifact: Artifact,
    request: EvalRequest,
    progress: Callable[[str], None] = print,
) -> EvalSummary:
    """Evaluate ``artifact`` on the test split of each dataset of ``request`` not evaluated
    yet, writing one result file per dataset to ``request.results``.

    Everything that can be checked is checked before any image is scored, in this order: the
    backbone (the artifact's, :func:`benchmark.artifacts.check_backbone`), the saved state
    (its method rebuilds the classifier), the datasets and the results folder.
    """
    provenance = artifact.provenance
    engine, classifier = _rebuilt(registry, artifact, request)
    datasets = datasets_to_evaluate(registry, artifact, request.datasets)
    context = DataContext(request.data_root, request.cache_dir)
    catalog = DatasetCatalog(registry.datasets, context, datasets)
    store = ResultStore(request.results)
    summary = EvalSummary()
    todo = []
    for name in datasets:
        split = _test_split(catalog, name)
        eval_id = evaluation_id(artifact, split, catalog.fingerprint(name))
        if store.is_done(eval_id):
            summary.done.append(name)
            progress(f"{name}: already evaluated (run {eval_id})")
        else:
            todo.append((eval_id, split))
    if todo:
        store.ensure_writable()
    provider = registry.methods.provider(split_variant(provenance.method)[0])
    for eval_id, split in todo:
        start = time.perf_counter()
        try:
            accuracy = top1(classifier, engine.features.features(split.samples), split)
        except InvalidScores as exc:
            raise UserError(
                f"run {provenance.run_id}: {exc}; its artifact gives no valid number",
                EXIT_ENVIRONMENT,
            ) from exc
        seconds = time.perf_counter() - start
        if accuracy is None:
            summary.unscorable.append(split.eval_dataset)
            progress(
                f"{split.eval_dataset}: {provenance.method} scores only the "
                f"{len(provenance.classes)} classes of {provenance.dataset} it was trained on; "
                "no row"
            )
            continue
        row = _row(artifact, eval_id, split, accuracy, seconds, provider, request.device)
        store.write_run(eval_id, [row])
        summary.written.append(split.eval_dataset)
        summary.rows += 1
        progress(f"{split.eval_dataset}: top-1 {accuracy:.2f}% on {len(split.samples)} images")
    return summary


def _row(
    artifact: Artifact,
    eval_id: str,
    split: EvalSplit,
    accuracy: float,
    seconds: float,
    provider: Any,
    device: str,
) -> ResultRow:
    provenance = artifact.provenance
    return ResultRow(
        run_id=eval_id,
        method=provenance.method,
        protocol=PROTOCOL,
        dataset=provenance.dataset,
        eval_dataset=split.eval_dataset,
        split=split.split,
        shots=provenance.shots,
        seed=provenance.seed,
        backbone=provenance.backbone,
        pretrained=provenance.pretrained,
        metric="accuracy",
        value=accuracy,
        n_eval=len(split.samples),
        config=provenance.config,
        train_seconds=0.0,
        eval_seconds=seconds,
        **made_by(provider, device),
        status="ok",
        error="",
        artifact=artifacts.relative_path(provenance.run_id),
    )
