"""``python -m benchmark doctor``: one command that checks and measures the training path on
one device, with random-initialised weights and synthetic data (nothing is downloaded).

Sections (each can be run alone with ``--only``):

- ``run``: a short matrix of real shapes through the runner (:func:`resolve_request`, then
  :class:`~benchmark.runner.Runner`): every registered method under every protocol, seeds
  1, 2, 3 trained together, on a synthetic world in CoOp's layout (a source of
  ``source_classes`` classes, a target of ``target_classes``, a shifted subset of the
  source), one shot, each method shortened by ``--set`` overrides
  (:data:`~benchmark.perf.numerics.SHORT_TRAINING`); every run must complete with finite
  results;
- ``numerics`` (:mod:`benchmark.perf.numerics`): bf16-autocast training against fp32
  training, seeds trained together against separate runs (fp32 and bf16), and a resumed
  matrix against an uninterrupted one, row by row;
- ``speed`` (:mod:`benchmark.perf.bench`): our step against the reference design's for every
  method with a reference design at each of ``bench_classes``, the text encoder's achieved
  TFLOP/s against the measured bf16 matmul peak, and image-feature extraction with decoding
  and encoding apart;
- ``memory``: the peak GPU memory of an ImageNet-size training (``memory_classes`` classes,
  ``memory_shots`` shots, 3 seeds, the reference preset's batch) of CoOp and CoCoOp.

Every check is PASS or FAIL against its target; the speed and memory targets are those of
one H100/H200-class GPU and apply on CUDA only: elsewhere those checks are INFO (measured,
not judged). The numerics and run checks are judged on every device.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from benchmark.backbone import Backbone, BackboneSpec
from benchmark.engine import Engine
from benchmark.errors import UserError, unknown_name
from benchmark.features import FeatureCache
from benchmark.method import Setting
from benchmark.perf import numerics
from benchmark.perf.bench import (
    PeakMemory,
    benchable,
    extraction_bound,
    extraction_summary,
    run_bench,
)
from benchmark.perf.synthetic import (
    SyntheticDataset,
    SyntheticDatasets,
    classnames,
    synthetic_runs,
    write_world,
)
from benchmark.prompting.text import TextTower
from benchmark.registry import Registry, build_registry
from benchmark.request import RunRequest, resolve_request
from benchmark.results import ResultStore
from benchmark.runner import Runner

SECTIONS = ("run", "numerics", "speed", "memory")
#: The order the sections run in: memory first, in a process that has allocated nothing yet.
EXECUTION_ORDER = ("memory", "run", "numerics", "speed")
PASS, FAIL, INFO = "PASS", "FAIL", "INFO"
SEEDS = (1, 2, 3)

#: Our step against the reference design's, at least this many times faster, by K.
SPEEDUP_TARGETS = {10: 5.0, 100: 5.0, 1000: 2.5}
#: The text encoder's achieved share of the measured bf16 matmul peak at the largest K.
TEXT_PEAK_SHARE = 0.40
#: Peak GPU memory of ImageNet-size training, in GB (10^9 bytes).
MEMORY_LIMIT_GB = 24.0
MEMORY_METHODS = ("coop", "cocoop")


@dataclass(frozen=True)
class Sizes:
    """The problem sizes of one doctor run."""

    backbone: str
    source_classes: int
    target_classes: int
    shift_classes: int
    bench_classes: tuple[int, ...]
    repeat: int  # timed steps per figure of the speed section
    images: int  # JPEG files of the extraction measurement
    numerics_classes: int
    memory_classes: int
    memory_shots: int
    memory_steps: int


#: One CUDA GPU: ViT-B/16, ImageNet's class count.
FULL = Sizes("ViT-B-16", 1000, 100, 200, (10, 100, 1000), 20, 1024, 100, 1000, 16, 8)
#: ``--quick``: the mini world's tiny CLIP architecture at small sizes (the CPU, the tests).
QUICK = Sizes("vlprompt-tiny", 30, 10, 6, (10, 100), 1, 16, 10, 100, 4, 2)


@dataclass
class Check:
    """One line of the doctor's table."""

    section: str
    name: str
    status: str
    measured: str
    target: str
    value: float | None = None


def model_image_size(name: str) -> int:
    """The input size of an open_clip model, from its config (no weights are built)."""
    import open_clip

    from benchmark.miniworld.model import register_model_config

    register_model_config()
    config = open_clip.get_model_config(name)
    if config is None:
        raise unknown_name("backbone", name, open_clip.list_models())
    size = config["vision_cfg"]["image_size"]
    return int(size[0] if isinstance(size, tuple | list) else size)


def _gb(gib: float | None) -> float | None:
    return None if gib is None else gib * 2**30 / 1e9


class _StepLimit(Exception):
    """Raised by :class:`_LimitedTower` when a training has made its passes."""


class _LimitedTower(TextTower):
    """The text tower, stopping a training (:class:`_StepLimit`) at its ``passes + 1``-th
    text pass with gradients: every training step makes at least one, scoring none."""

    def __init__(self, backbone: Backbone, passes: int) -> None:
        super().__init__(backbone)
        self.left = passes

    def _count(self) -> None:
        if torch.is_grad_enabled():
            if self.left == 0:
                raise _StepLimit
            self.left -= 1

    def encode(self, x: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        self._count()
        return super().encode(x, eot)

    def encode_shared(self, prefix, suffixes):
        self._count()
        return super().encode_shared(prefix, suffixes)


@dataclass
class _LimitedEngine(Engine):
    """An engine whose text tower stops training after ``passes`` text passes."""

    passes: int = 1

    @cached_property
    def tower(self) -> TextTower:
        return _LimitedTower(self.backbone, self.passes)


def training_peak(
    backbone: Backbone,
    registry: Registry,
    name: str,
    classes: int,
    shots: int,
    steps: int,
    folder: Path,
) -> dict[str, Any]:
    """Peak GPU memory of the first ``steps`` steps of an ImageNet-size training of method
    ``name``: 3 runs of ``shots x classes`` samples (features held in memory, as a real
    epoch holds its view), the reference preset's batch; None on the CPU."""
    method = registry.methods.get(name).load()
    setting = Setting("few_shot", "imagenet", shots, backbone.spec.name, "reference")
    config = dataclasses.replace(method.config(setting), epochs=1)
    engine = _LimitedEngine(backbone, FeatureCache(folder / "cache", backbone), passes=steps)
    runs = synthetic_runs(engine, classnames(classes), len(SEEDS), shots * classes, folder, 1)
    gc.collect()
    if backbone.device.type == "cuda":
        torch.cuda.empty_cache()
    with PeakMemory(backbone.device) as peak, suppress(_StepLimit):
        method.train(runs, config, engine)
    return {
        "method": name,
        "classes": classes,
        "shots": shots,
        "batch": config.batch_size,
        "steps": steps - engine.tower.left,
        "peak_allocated_gb": _gb(peak.gib),
        "peak_reserved_gb": _gb(peak.reserved_gib),
    }


class Doctor:
    """One doctor run: its sizes, device and folder; each section appends its checks."""

    def __init__(
        self,
        sizes: Sizes,
        device: str,
        folder: Path,
        workers: int,
        autoload: bool | None,
        progress: Callable[[str], None],
    ) -> None:
        self.sizes, self.device, self.folder = sizes, device, folder
        self.workers, self.autoload, self.progress = workers, autoload, progress
        self.judged = device.startswith("cuda")  # the speed and memory targets: CUDA only
        self.checks: list[Check] = []
        self.data: dict[str, Any] = {}

    # -- shared pieces ---------------------------------------------------------------------

    @cached_property
    def spec(self) -> BackboneSpec:
        """The backbone: random-initialised weights, drawn once and saved, so that every
        model of the run (the runners', the sections') has the same ones. Two random draws
        would share the feature cache, whose key for unsaved random weights is the model's
        name alone, and a resumed run would score with other weights than it encoded with."""
        from safetensors.torch import save_file

        torch.manual_seed(0)  # the same weights whichever sections run before
        model = Backbone(BackboneSpec(self.sizes.backbone), "cpu").model
        path = self.folder / f"random-init-{self.sizes.backbone}.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
        return BackboneSpec(self.sizes.backbone, None, path)

    @cached_property
    def registry(self) -> Registry:
        return build_registry(autoload=self.autoload)

    @cached_property
    def world(self) -> tuple[SyntheticDataset, ...]:
        """The synthetic world, written on first use: an ImageNet-like source, a target of
        other classes, and a shifted subset of the source (as ImageNet-A/-R)."""
        s = self.sizes
        source = f"synthetic_k{s.source_classes}"
        world = (
            SyntheticDataset(source, "source", s.source_classes, (2, 1, 1)),
            SyntheticDataset(
                f"synthetic_k{s.target_classes}",
                "target",
                s.target_classes,
                (2, 1, 2),
                first_class=s.source_classes,
            ),
            SyntheticDataset(f"{source}_shift", "shift", s.shift_classes, (0, 0, 1), source=source),
        )
        image_size = model_image_size(self.sizes.backbone)
        self.progress(f"writing the synthetic world ({image_size}-pixel JPEGs)")
        write_world(self.folder / "data", world, image_size)
        return world

    @cached_property
    def world_registry(self) -> Registry:
        plugin = SyntheticDatasets(self.folder / "data", self.world)
        return build_registry(autoload=self.autoload, extra_plugins=[plugin])

    def request(self, datasets: Sequence[str], results: str) -> RunRequest:
        """The request of ``run`` over ``datasets`` of the synthetic world: every method and
        protocol, seeds 1, 2, 3, one shot, the reference preset shortened by ``--set``."""
        registry = self.world_registry
        sets = [
            f"{name}.{field}={value}"
            for name in registry.methods
            for field, value in numerics.short_overrides(registry.methods.get(name).load()).items()
        ]
        request = resolve_request(
            registry,
            datasets=list(datasets),
            seeds=list(SEEDS),
            shots=[1],
            backbone=self.spec.name,
            checkpoint=self.spec.checkpoint,
            results=self.folder / results,
            cache_dir=self.folder / "cache",
            device=self.device,
            preset="reference",
            sets=sets,
        )
        return request

    def add(self, section: str, name: str, ok: bool | None, measured: str, target: str, value=None):
        """A check: ``ok`` None for one measured without a target on this device."""
        status = INFO if ok is None else (PASS if ok else FAIL)
        self.checks.append(Check(section, name, status, measured, target, value))

    # -- sections --------------------------------------------------------------------------

    def run_matrix(self) -> None:
        s = self.sizes
        request = self.request([d.name for d in self.world], "matrix")
        runner = Runner(self.world_registry, request, self.progress)
        start = time.perf_counter()
        summary = runner.run()
        seconds = time.perf_counter() - start
        rows = ResultStore(request.results).read().to_pylist()
        ok_runs = {r["run_id"] for r in rows if r["status"] == "ok"}
        nonfinite = sum(1 for r in rows if r["status"] == "ok" and not math.isfinite(r["value"]))
        self.data["run"] = {
            "methods": list(request.methods),
            "protocols": list(request.protocols),
            "datasets": list(request.datasets),
            "planned": summary.planned,
            "succeeded": summary.succeeded,
            "failed": [
                f"{cell.method} {cell.protocol} {cell.dataset}: {e}" for cell, e in summary.failed
            ],
            "rows": len(rows),
            "nonfinite": nonfinite,
            "seconds": seconds,
        }
        ok = not summary.failed and len(ok_runs) == summary.planned > 0 and nonfinite == 0
        self.add(
            "run",
            f"matrix: {len(request.methods)} methods x {len(request.protocols)} protocols, "
            f"K = {s.source_classes} and {s.target_classes}, seeds batched",
            ok,
            f"{len(ok_runs)} of {summary.planned} runs ok, {len(summary.failed)} failed, "
            f"{nonfinite} non-finite values, {seconds:.0f} s",
            "every run completes",
            float(len(summary.failed)),
        )

    def run_numerics(self) -> None:
        methods = list(self.registry.methods)
        backbone = Backbone(self.spec, self.device)
        engine = Engine(backbone, FeatureCache(self.folder / "numerics-cache", backbone))
        self.data["numerics"] = {
            "classes": self.sizes.numerics_classes,
            "steps": 2 * numerics.EPOCHS,
            "tolerances": dict(numerics.TOLERANCES),
            "bf16_vs_fp32": self._precision(engine, methods),
            "seeds": self._seeds(engine, methods),
            "resume": self._resume(),
        }

    def _precision(self, engine: Engine, methods: Sequence[str]) -> dict[str, Any]:
        limit = numerics.TOLERANCES["bf16_vs_fp32"]
        folder = self.folder / "numerics" / "precision"
        k = self.sizes.numerics_classes
        precision = numerics.precision_deviations(
            engine, self.registry, methods, k, folder, self.progress
        )
        if not precision:
            return precision
        worst = max(precision, key=lambda m: precision[m]["deviation"])
        deviation = precision[worst]["deviation"]
        dtypes = {p["scores_dtype"] for p in precision.values()}
        finite = all(p["finite"] for p in precision.values())
        in_effect = all(p["deviation"] > 0 for p in precision.values())
        self.add(
            "numerics",
            f"bf16 autocast against fp32 training, {len(precision)} methods, "
            f"{2 * numerics.EPOCHS} steps",
            deviation <= limit and dtypes == {"float32"} and finite and in_effect,
            f"deviation at most {deviation:.3f} ({worst}); bf16 scores {'/'.join(sorted(dtypes))}"
            f"{', finite' if finite else ', NOT finite'}"
            f"{'' if in_effect else '; bf16 changed nothing: autocast was not in effect'}",
            f"<= {limit} of what training changed; fp32 out of bf16",
            deviation,
        )
        return precision

    def _seeds(self, engine: Engine, methods: Sequence[str]) -> dict[str, dict[str, float]]:
        seeds = {}
        k = self.sizes.numerics_classes
        for label, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            limit = numerics.TOLERANCES[f"seeds_{label}"]
            folder = self.folder / "numerics" / f"seeds-{label}"
            found = numerics.seed_deviations(
                engine, self.registry, methods, k, dtype, folder, self.progress
            )
            worst = max(found, key=found.get)
            self.add(
                "numerics",
                f"3 seeds batched = separate runs, {label}, {len(methods)} methods",
                found[worst] <= limit,
                f"deviation at most {found[worst]:.2g} ({worst})",
                f"<= {limit:g}",
                found[worst],
            )
            seeds[label] = found
        return seeds

    def _resume(self) -> dict[str, Any]:
        request = self.request([self.world[1].name], "resume")
        resume = numerics.resume_equality(
            self.world_registry, request, not self.judged, self.progress
        )
        ok = (
            resume["missing"] == resume["extra"] == resume["differing"] == resume["failed"] == 0
            and resume["rewritten"] == 0
            and resume["skipped"] == resume["done_before"] > 0
        )
        self.add(
            "numerics",
            "resumed matrix = uninterrupted, row by row (fp32)",
            ok,
            f"{resume['rows']} rows against {resume['resumed_rows']}: {resume['missing']} "
            f"missing, {resume['extra']} extra, {resume['differing']} differing; interrupted "
            f"after {resume['groups'] // 2} of {resume['groups']} groups "
            f"({resume['done_before']} runs), {resume['rewritten']} of them redone; largest "
            f"difference: accuracy {resume['accuracy_diff']:.3g} points, other values "
            f"{resume['relative_diff']:.2g} relative",
            "same rows, nothing redone, values equal"
            + ("" if not self.judged else " (CUDA: to one test image, others 1e-4)"),
            float(resume["differing"]),
        )
        return resume

    def run_speed(self) -> None:
        s = self.sizes
        methods = benchable(self.registry)
        report = run_bench(
            self.spec,
            self.device,
            methods,
            s.bench_classes,
            len(SEEDS),
            s.images,
            self.workers,
            s.repeat,
            self.progress,
            self.registry,
        )
        self.data["bench"] = report
        self.judge_speed(report)

    def judge_speed(self, report: dict[str, Any]) -> None:
        """The speed checks of a bench report: each step's speed-up, the text encoder's
        share of the bf16 peak at the largest K (CoOp's step), extraction's bound."""
        judged = self.judged
        largest = max(r["classes"] for r in report["rows"])
        for row in report["rows"]:
            k, target = row["classes"], SPEEDUP_TARGETS.get(row["classes"])
            self.add(
                "speed",
                f"step speed-up, {row['method']}, K = {k}",
                row["speedup"] >= target if judged and target else None,
                f"{row['speedup']:.1f}x ({row['reference_ms']:.1f} ms reference step, "
                f"{row['ours_ms']:.2f} ms per run-step ours)",
                f">= {target:g}x" if target else "",
                row["speedup"],
            )
        rows = [r for r in report["rows"] if r["classes"] == largest]
        text = next((r for r in rows if r["method"] == "coop"), rows[0] if rows else None)
        if text is not None:
            share, peak = text["text_peak_share"], report["matmul_bf16_tflops"]
            measured = f"{text['text_tflops']:.3g} TFLOP/s"
            if share is None:
                measured += " (no bf16 matmul peak measured off CUDA)"
            else:
                measured += f" = {100 * share:.0f}% of the measured bf16 peak {peak:.0f} TFLOP/s"
            self.add(
                "speed",
                f"text encoder, {text['method']}, K = {text['classes']}",
                share >= TEXT_PEAK_SHARE if judged and share is not None else None,
                measured,
                f">= {100 * TEXT_PEAK_SHARE:.0f}% of the bf16 peak at K = 1000",
                share,
            )
        bound = extraction_bound(report)
        self.add(
            "speed",
            "image-feature extraction",
            bound == "encoding" if judged else None,
            f"{report['extraction_images_per_s']:.0f} images/s end to end; "
            + extraction_summary(report),
            "bound by encoding, not decoding",
            report["decode_images_per_s"] / report["encode_images_per_s"],
        )

    def run_memory(self) -> None:
        s = self.sizes
        backbone = Backbone(self.spec, self.device)
        peaks = [
            training_peak(
                backbone,
                self.registry,
                name,
                s.memory_classes,
                s.memory_shots,
                s.memory_steps,
                self.folder / f"memory-{name}",
            )
            for name in MEMORY_METHODS
            if name in self.registry.methods
        ]
        self.data["memory"] = peaks
        self.judge_memory(peaks)

    def judge_memory(self, peaks: Sequence[dict[str, Any]]) -> None:
        """A check per measured training peak."""
        for peak in peaks:
            reserved = peak["peak_reserved_gb"]
            self.add(
                "memory",
                f"training peak memory, {peak['method']} (K = {peak['classes']}, "
                f"{peak['shots']} shots, {len(SEEDS)} seeds, batch {peak['batch']})",
                reserved < MEMORY_LIMIT_GB if self.judged and reserved is not None else None,
                "no GPU memory off CUDA"
                if reserved is None
                else f"{reserved:.1f} GB reserved, {peak['peak_allocated_gb']:.1f} GB allocated "
                f"(peak over {peak['steps']} steps)",
                f"< {MEMORY_LIMIT_GB:g} GB",
                reserved,
            )


RUNNERS: dict[str, Callable[[Doctor], None]] = {
    "run": Doctor.run_matrix,
    "numerics": Doctor.run_numerics,
    "speed": Doctor.run_speed,
    "memory": Doctor.run_memory,
}


def run_doctor(
    sizes: Sizes,
    device: str,
    sections: Sequence[str] = SECTIONS,
    workers: int = 0,
    autoload: bool | None = None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the ``sections``; the report (see :func:`render`). A section that raises (other
    than a :class:`~benchmark.errors.UserError`) is a failed check, and the other sections
    still run."""
    torch.manual_seed(0)  # what draws from torch's global generator: the same in every run
    cuda = device.startswith("cuda")
    report: dict[str, Any] = {
        "kind": "doctor",
        "device": torch.cuda.get_device_name(torch.device(device)) if cuda else "cpu",
        "backbone": sizes.backbone,
        "weights": "random (seed 0)",
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "sizes": dataclasses.asdict(sizes),
        "sections": [s for s in SECTIONS if s in sections],
        "seconds": {},
    }
    with tempfile.TemporaryDirectory(prefix="vlprompt-doctor-") as tmp:
        doctor = Doctor(sizes, device, Path(tmp), workers, autoload, progress)
        for section in EXECUTION_ORDER:
            if section not in sections:
                continue
            progress(f"== {section}")
            start = time.perf_counter()
            try:
                RUNNERS[section](doctor)
            except UserError:
                raise  # the request is wrong (no GPU, an unknown backbone): nothing to check
            except Exception as exc:
                progress(traceback.format_exc())
                doctor.add(
                    section, f"{section} section", False, f"{type(exc).__name__}: {exc}", "no error"
                )
            finally:
                gc.collect()
                if cuda:
                    torch.cuda.empty_cache()
            report["seconds"][section] = time.perf_counter() - start
    report.update(doctor.data)
    order = {name: i for i, name in enumerate(SECTIONS)}
    checks = sorted(doctor.checks, key=lambda c: order[c.section])
    report["checks"] = [dataclasses.asdict(c) for c in checks]
    return report


def failed(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's failed checks."""
    return [c for c in report["checks"] if c["status"] == FAIL]


def render(report: dict[str, Any]) -> str:
    """The report as one GitHub table, with a summary line."""
    from tabulate import tabulate

    table = tabulate(
        [
            (c["section"], c["name"], c["measured"], c["target"], c["status"])
            for c in report["checks"]
        ],
        headers=("section", "check", "measured", "target", "result"),
        tablefmt="github",
    )
    counts = {
        status: sum(c["status"] == status for c in report["checks"])
        for status in (PASS, FAIL, INFO)
    }
    seconds = report["seconds"]
    timing = ", ".join(
        f"{name} {seconds[name]:.0f} s" for name in report["sections"] if name in seconds
    )
    return (
        f"{report['backbone']} with {report['weights']} weights on {report['device']}, torch "
        f"{report['torch']}\n\n{table}\n\n{counts[PASS]} passed, {counts[FAIL]} failed, "
        f"{counts[INFO]} measured without a target on this device; {sum(seconds.values()):.0f} s "
        f"({timing})"
    )
