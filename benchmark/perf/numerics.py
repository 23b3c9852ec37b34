"""The doctor's numerics checks: bf16 autocast against fp32 training, seeds trained together
against separate runs, and a resumed matrix against an uninterrupted one.

The first two train a method on synthetic runs (random image features held in memory,
:func:`~benchmark.perf.synthetic.synthetic_runs`) for :data:`EPOCHS` epochs of two steps and
compare what the trained classifiers score on the same test features, always scored in fp32
so that only the training differs. A difference is measured against what training changed:

    deviation(a, b) = |scores_a - scores_b| / |scores_b - scores_untrained|   (Frobenius norms)

where ``scores_untrained`` are the scores of the same configuration trained for 0 epochs (its
initialisation); for a method without epochs (zero-shot CLIP, the linear probe) they are 0,
and the deviation is relative to the scores themselves. A wrong gradient, or runs that leak
into each other, give a deviation of the order of 1; rounding gives the order of the
precision's resolution.

Tolerances (:data:`TOLERANCES`). bf16 keeps 8 significant bits, and with random weights the
cross-entropy's gradient is small (every class's prompt gives nearly the same text feature),
so rounding is large against what a few steps learn. Over these 6 steps (bf16 autocast on
the CPU; the tiny CLIP in 6 weight draws, ViT-B/16 in 2) CoOp, CoCoOp, ProGrad, SCoOp and
GCSCoOp deviated by 0.01-0.08 and KgCoOp by 0.06-0.39 (up to 0.55 over 10-20 steps): its
anchor term, at its optimum at the start, turns rounding into a pull of its own. A dtype bug
(bf16 master weights that lose the updates, a wrong cast) deviates by 1 or more: the
tolerance is 0.75. Runs trained together do the same operations as separate runs on larger
tensors: in fp32 they agree to 1e-4 (summation order only; on the CPU they came out bitwise
equal, CoCoOp to 2e-5), in bf16 to the bf16 tolerance (other matrix shapes may round
differently). The resumed matrix runs in fp32 and
is compared row by row with an uninterrupted one: the same runs and rows, every value equal
on the CPU; on CUDA, whose backward kernels add with atomics (not bitwise reproducible), an
accuracy may differ by one test image and any other value by 1e-4 relative.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import torch

from benchmark.backbone import Backbone
from benchmark.config import apply_overrides
from benchmark.engine import Engine
from benchmark.method import Setting
from benchmark.perf.synthetic import classnames, synthetic_runs
from benchmark.protocol import Classes, TrainData
from benchmark.registry import Registry
from benchmark.request import RunRequest
from benchmark.results import ResultStore
from benchmark.runner import Cell, Outcome, Runner

#: Config fields that make a training short, for whichever method has them: the shared
#: loop's epochs, and the linear probe's L-BFGS iterations and a fixed C (one fit, no search).
SHORT_TRAINING = {"epochs": 1, "max_iter": 20, "C": 1.0}
#: Epochs of the precision and seed checks (two steps each; the first at the warm-up rate).
EPOCHS = 3
TEST_IMAGES = 16
TOLERANCES = {"bf16_vs_fp32": 0.75, "seeds_fp32": 1e-4, "seeds_bf16": 0.75, "resume_cuda": 1e-4}
#: Columns of a result row that differ between two runs of the same cell by design.
VOLATILE = ("timestamp", "train_seconds", "eval_seconds")


def config_fields(method: Any) -> set[str]:
    """The field names of a method's config."""
    return {field.name for field in dataclasses.fields(method.Config)}


def short_overrides(method: Any, epochs: int = 1) -> dict[str, str]:
    """The ``--set`` values (field -> text) of :data:`SHORT_TRAINING` that ``method``'s
    config has, with ``epochs`` epochs."""
    values = dict(SHORT_TRAINING, epochs=epochs)
    return {name: str(value) for name, value in values.items() if name in config_fields(method)}


@contextmanager
def autocast_dtype(backbone: Backbone, dtype: torch.dtype | None) -> Iterator[None]:
    """Run the backbone's encoders under ``dtype`` autocast (None: fp32) inside the block."""
    saved = backbone.autocast_dtype
    backbone.autocast_dtype = dtype
    try:
        yield
    finally:
        backbone.autocast_dtype = saved


def deviation(a: torch.Tensor, b: torch.Tensor, untrained: torch.Tensor) -> float:
    """``|a - b| / |b - untrained|`` (module docstring); inf when training changed nothing
    and ``a`` differs from ``b``."""
    learned = float((b - untrained).norm())
    difference = float((a - b).norm())
    if learned == 0:
        return 0.0 if difference == 0 else math.inf
    return difference / learned


class TrainingProbe:
    """One method, its short reference configuration and 3 synthetic runs of ``classes``
    classes: trains them and scores the classifiers on fixed test features."""

    def __init__(self, engine: Engine, registry: Registry, name: str, classes: int, folder: Path):
        self.engine = engine
        self.method = registry.methods.get(name).load()
        self.trains = "epochs" in config_fields(self.method)
        setting = Setting("few_shot", "synthetic", 16, engine.backbone.spec.name, "reference")
        config = self.method.config(setting)
        self.config = apply_overrides(config, name, short_overrides(self.method, EPOCHS))
        names = classnames(classes)
        samples = 2 * getattr(self.config, "batch_size", 32)
        self.runs = synthetic_runs(engine, names, 3, samples, folder, EPOCHS)
        generator = torch.Generator().manual_seed(1)
        self.test = torch.randn(TEST_IMAGES, engine.backbone.embed_dim, generator=generator)
        self.classes = Classes("bench", names, self.runs[0].classes.template)

    def train(
        self, runs: Sequence[TrainData], dtype: torch.dtype | None, epochs: int | None = None
    ) -> list[Any]:
        """The classifiers of ``runs`` trained together under ``dtype`` autocast (None:
        fp32), for ``epochs`` instead of EPOCHS if given. Each training gets an engine of
        its own, so that the text features a method computes once (anchors, a teacher's)
        are computed in its precision, not taken from another training."""
        config = self.config
        if epochs is not None and self.trains:
            config = dataclasses.replace(config, epochs=epochs)
        engine = Engine(self.engine.backbone, self.engine.features)
        with autocast_dtype(engine.backbone, dtype):
            return self.method.train(list(runs), config, engine)

    def score(self, classifiers: Sequence[Any], dtype: torch.dtype | None = None) -> torch.Tensor:
        """Test scores (runs, images, classes), scored under ``dtype`` autocast (None: fp32),
        in the dtype the classifiers return."""
        with autocast_dtype(self.engine.backbone, dtype), torch.no_grad():
            features = self.test.to(self.engine.device)
            return torch.stack([c.scores(features, self.classes).cpu() for c in classifiers])

    def trained_scores(self, runs: Sequence[TrainData], dtype: torch.dtype | None) -> torch.Tensor:
        """fp32 test scores of ``runs`` trained together under ``dtype`` autocast."""
        return self.score(self.train(runs, dtype)).float()

    def untrained(self) -> torch.Tensor:
        """Scores before training (0 epochs), or zeros for a method without epochs."""
        if not self.trains:
            return torch.zeros(len(self.runs), TEST_IMAGES, len(self.classes.names))
        return self.score(self.train(self.runs, None, epochs=0)).float()


def precision_deviations(
    engine: Engine,
    registry: Registry,
    methods: Sequence[str],
    classes: int,
    folder: Path,
    progress: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    """Per method trained for epochs: the deviation of bf16-autocast training from fp32
    training, and whether bf16 training and scoring (the CUDA path) gave finite fp32 scores
    (fp32 learned tensors and features out of bf16 encoders)."""
    out = {}
    for name in methods:
        probe = TrainingProbe(engine, registry, name, classes, folder / name)
        if not probe.trains:
            continue
        progress(f"numerics: {name}, bf16 autocast against fp32, {classes} classes")
        untrained = probe.untrained()
        fp32 = probe.trained_scores(probe.runs, None)
        trained = probe.train(probe.runs, torch.bfloat16)
        bf16 = probe.score(trained, torch.bfloat16)
        out[name] = {
            "deviation": deviation(probe.score(trained).float(), fp32, untrained),
            "scores_dtype": str(bf16.dtype).removeprefix("torch."),
            "finite": bool(torch.isfinite(bf16).all()),
        }
    return out


def seed_deviations(
    engine: Engine,
    registry: Registry,
    methods: Sequence[str],
    classes: int,
    dtype: torch.dtype | None,
    folder: Path,
    progress: Callable[[str], None],
) -> dict[str, float]:
    """Per method: the deviation of 3 runs trained together from the same runs trained one
    at a time, under ``dtype`` autocast (None: fp32)."""
    out = {}
    precision = "fp32" if dtype is None else "bf16"
    for name in methods:
        progress(f"numerics: {name}, 3 seeds batched against separate runs, {precision}")
        probe = TrainingProbe(engine, registry, name, classes, folder / f"{name}-{precision}")
        untrained = probe.untrained()
        together = probe.trained_scores(probe.runs, dtype)
        alone = torch.cat([probe.trained_scores([run], dtype) for run in probe.runs])
        out[name] = deviation(together, alone, untrained)
    return out


# -- resume ------------------------------------------------------------------------------------


class Interruption(KeyboardInterrupt):
    """What the interrupted runner raises: a Ctrl-C at a chosen point."""


class InterruptedRunner(Runner):
    """A runner stopped, as by Ctrl-C, when it starts its ``(after + 1)``-th group."""

    def __init__(self, *args, after: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.after, self.started = after, 0

    def execute(self, group: list[Cell]) -> Outcome:
        if self.started == self.after:
            raise Interruption
        self.started += 1
        return super().execute(group)


def _rows(results: Path) -> dict[tuple, dict[str, Any]]:
    rows = ResultStore(results).read().to_pylist()
    return {(r["run_id"], r["eval_dataset"], r["split"], r["metric"]): r for r in rows}


def _files(results: Path) -> dict[str, tuple[int, int]]:
    """Each result file's (size, modification time in ns)."""
    folder = ResultStore(results).folder
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.glob("*.parquet")}


def _allowed(row: dict[str, Any], exact: bool) -> float:
    """How far a resumed row's value may be from the uninterrupted one's (module docstring)."""
    if exact:
        return 0.0
    if row["metric"] == "accuracy":
        return 100.0 / row["n_eval"] if row["n_eval"] else 1.0  # one image; derived: a point
    return TOLERANCES["resume_cuda"] * abs(row["value"])


def _runner(registry: Registry, request: RunRequest, progress, after: int | None = None) -> Runner:
    """A runner training in fp32 (``after``: one interrupted when it starts a group)."""
    if after is None:
        runner = Runner(registry, request, progress)
    else:
        runner = InterruptedRunner(registry, request, progress, after=after)
    runner.engine.backbone.autocast_dtype = None
    return runner


def resume_equality(
    registry: Registry, request: RunRequest, exact: bool, progress: Callable[[str], None]
) -> dict[str, Any]:
    """Run ``request`` in fp32 uninterrupted into ``results/uninterrupted``; run it again
    into ``results/resumed``, interrupted after half its groups, then to the end; compare
    row by row (``exact``: every value equal, else the CUDA tolerances).

    Returns the comparison: rows of each, keys missing from or extra in the resumed one,
    rows whose status, n_eval or config differ or whose value is beyond the tolerance, the
    largest value differences (accuracy in points, others relative), the runs done before
    the interruption, those the second pass skipped, and the result files of the first pass
    it rewrote.
    """
    root = request.results
    whole = dataclasses.replace(request, results=root / "uninterrupted")
    resumed = dataclasses.replace(request, results=root / "resumed")
    progress("numerics: the matrix uninterrupted")
    uninterrupted = _runner(registry, whole, progress)
    first = uninterrupted.run()
    groups = len(uninterrupted.plan())
    progress(f"numerics: the same matrix interrupted after {groups // 2} of {groups} groups")
    with suppress(Interruption):
        _runner(registry, resumed, progress, after=groups // 2).run()
    before = _files(resumed.results)
    progress("numerics: the interrupted matrix run again")
    second = _runner(registry, resumed, progress).run()
    after = _files(resumed.results)
    a, b = _rows(whole.results), _rows(resumed.results)
    differing, accuracy_diff, relative_diff = 0, 0.0, 0.0
    for key in a.keys() & b.keys():
        x, y = a[key], b[key]
        fixed = [c for c in x if c not in VOLATILE and c != "value"]
        diff = abs(x["value"] - y["value"])
        if math.isnan(diff):
            diff = 0.0 if math.isnan(x["value"]) and math.isnan(y["value"]) else math.inf
        if any(x[c] != y[c] for c in fixed) or diff > _allowed(x, exact):
            differing += 1
        if x["metric"] == "accuracy":
            accuracy_diff = max(accuracy_diff, diff)
        elif diff:
            relative_diff = max(relative_diff, diff / max(abs(x["value"]), 1e-12))
    return {
        "groups": groups,
        "rows": len(a),
        "resumed_rows": len(b),
        "missing": len(a.keys() - b.keys()),
        "extra": len(b.keys() - a.keys()),
        "differing": differing,
        "accuracy_diff": accuracy_diff,
        "relative_diff": relative_diff,
        "failed": len(first.failed) + len(second.failed),
        "done_before": len(before),
        "skipped": second.skipped,
        "rewritten": sum(1 for name, stamp in before.items() if after.get(name) != stamp),
    }
