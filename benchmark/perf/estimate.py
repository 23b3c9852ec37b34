"""Device hours of the papers' matrices, ours against the reference design, from a bench report.

Matrices: few-shot (the 11 training datasets x the few-shot protocol's shot counts x seeds
1, 2, 3 x the 8 methods) and base-to-new (the same datasets x its shot count x 3 seeds x the
8 methods, trained on the base classes). Epochs and batch sizes are read from each method's
own reference preset, ``config(Setting(protocol, dataset, shots, backbone, "reference"))``;
split sizes are the standard datasets' (:data:`benchmark.datasets.standard.EXPECTED`); steps
per epoch follow the trainer's sampler (:func:`~benchmark.prompting.trainer.steps_per_epoch`).
The assumptions are listed in :data:`ASSUMPTIONS` and printed with the estimate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from benchmark.datasets.standard import EXPECTED
from benchmark.errors import UserError
from benchmark.method import Setting
from benchmark.prompting.trainer import steps_per_epoch

SEEDS = 3  # the papers' seeds 1, 2, 3
PROTOCOLS = ("few_shot", "base_to_new")
NO_TRAINING = "zeroshot"
FEATURES_ONLY = "linear_probe"
PER_IMAGE_PROMPTS = "cocoop"  # builds K prompts per image, at evaluation too
#: Methods timed as another: SCoOp's step is GCSCoOp's two forward/backward passes without
#: the gradient combination.
STAND_INS = {"scoop": "gcscoop"}

ASSUMPTIONS = (
    "training set = shots x classes (every class has at least that many training images); "
    "base-to-new trains on ceil(classes / 2) base classes",
    "step time is piecewise linear in the class count through the measured points, extended "
    "linearly above the largest and constant below the smallest",
    "ours: a step's time does not depend on the batch size (image features are cached; the "
    "text encoder runs over the classes' prompts whatever the batch); runs of the 3 seeds "
    "train together, as the runner batches them, at the report's measured per-run-step time",
    "reference: a step at the preset's batch B is the measured step plus its image passes "
    "times (image pass at B - image pass at the measured batch)",
    "ours, one time per backbone: every test image once, each seed's training images in as "
    "many augmented views (each seed draws its own) as the longest training on its dataset "
    "has epochs, and every training image once more in the test view for the linear probe; "
    "a seed's training images are bounded by the sum over shots of shots x classes (at most "
    "the train split); JPEG decoding counted per view, at the measured extraction rate",
    "reference: each trained run encodes its test split again (image pass at the largest "
    "measured batch, per image); zero-shot CLIP and the linear probe encode the test split "
    "once per dataset, the linear probe also each run's training images; decoding not counted",
    "CoCoOp's evaluation builds K prompts per test image, in both designs: half a measured "
    "batch-1 training step per test image (a forward without the backward)",
    "not counted: result writing, the linear probe's L-BFGS fit (CPU), scoring against "
    "cached features (ours), data loading that overlaps the GPU",
)


@dataclass(frozen=True)
class StepTimes:
    """Measured times of one method: ms per run-step at each class count, at ``batch``."""

    ours: Callable[[int], float]
    reference: Callable[[int], float]
    batch: int
    image_passes: int


def curve(points: Mapping[int, float]) -> Callable[[int], float]:
    """Piecewise-linear interpolation through (K, value); linear above, constant below."""
    ks = sorted(points)

    def at(k: int) -> float:
        if k <= ks[0]:
            return points[ks[0]]
        right = next((i for i, x in enumerate(ks) if x >= k), len(ks) - 1)
        lo, hi = ks[right - 1], ks[right]
        slope = (points[hi] - points[lo]) / (hi - lo)
        return points[lo] + slope * (k - lo)

    return at


def step_times(report: dict) -> dict[str, StepTimes]:
    """Per benched method, its step-time curves over the class count."""
    by_method: dict[str, list[dict]] = {}
    for row in report["rows"]:
        by_method.setdefault(row["method"], []).append(row)
    times = {}
    for method, rows in by_method.items():
        if len({r["classes"] for r in rows}) < 2:
            raise UserError(
                f"the estimate needs step times at two or more class counts; the report has "
                f"{method} at {rows[0]['classes']} only (use --classes 10,100)"
            )
        times[method] = StepTimes(
            curve({r["classes"]: r["ours_ms"] for r in rows}),
            curve({r["classes"]: r["reference_ms"] for r in rows}),
            rows[0]["batch"],
            rows[0]["image_passes"],
        )
    return times


def trained_classes(protocol: str, dataset: str) -> int:
    """Classes a run trains on: all, or base-to-new's ceil(n / 2) base classes."""
    classes = EXPECTED[dataset].classes
    return math.ceil(classes / 2) if protocol == "base_to_new" else classes


def training(method, protocol: str, dataset: str, shots: int, backbone: str):
    """(classes trained on, reference config, steps per epoch) of one prompt-learning run on
    a standard dataset: ``shots`` images of each trained class, the preset's batch size."""
    k = trained_classes(protocol, dataset)
    config = method.config(Setting(protocol, dataset, shots, backbone, "reference"))
    return k, config, steps_per_epoch(shots * k, config.batch_size)


def run_steps(protocol: str, dataset: str, shots: int, config) -> tuple[int, int]:
    """(classes trained on, training steps) of one run with ``config`` on a standard dataset."""
    k = trained_classes(protocol, dataset)
    return k, config.epochs * steps_per_epoch(shots * k, config.batch_size)


def encoded_views(train: int, test: int, per_seed: int, seeds: int, views: int) -> int:
    """Images through the image encoder for one dataset, views included: each seed's
    ``per_seed`` training images (at most the ``train`` split) in ``views`` augmented views
    of its own, every distinct training image once more in the test view, and the test
    split."""
    per_seed = min(train, per_seed)
    return seeds * per_seed * views + min(train, seeds * per_seed) + test


def per_image_scoring_ms(test_images: int, step_ms: float) -> float:
    """Scoring a test split with per-image prompts (CoCoOp): half a training step (the
    forward, no backward) per test image."""
    return test_images * step_ms / 2


@dataclass
class Cost:
    """Seconds of one method over one matrix."""

    ours: float = 0.0
    reference: float = 0.0


def estimate(report: dict, registry, backbone: str | None = None) -> dict:
    """Hours of each matrix per method and in total, ours against the reference design."""
    backbone = backbone or report["backbone"]
    times = step_times(report)
    image_ms = {int(b): ms for b, ms in report["reference_image_ms"].items()}
    largest = max(image_ms)
    per_image = image_ms[largest] / largest / 1000  # reference image pass, seconds per image
    extraction_rate = report["extraction_images_per_s"]
    datasets = {name: sizes for name, sizes in EXPECTED.items() if sizes.train > 0}
    out: dict = {"device": report["device"], "backbone": report["backbone"], "matrices": []}
    skipped: set[str] = set()
    for protocol in PROTOCOLS:
        shots_list = registry.protocols.get(protocol).default_shots
        costs: dict[str, Cost] = {}
        views = {d: 0 for d in datasets}  # ours: augmented views per training image
        cells = 0
        for method_name in registry.methods:
            method = registry.methods.get(method_name).load()
            timed = times.get(method_name) or times.get(STAND_INS.get(method_name, ""))
            trains = method_name not in (NO_TRAINING, FEATURES_ONLY)
            if trains and timed is None:
                skipped.add(method_name)
                continue
            cost = costs.setdefault(method_name, Cost())
            for dataset, sizes in datasets.items():
                if not trains:
                    cost.reference += sizes.test * per_image
                for shots in shots_list:
                    cells += SEEDS
                    if method_name == FEATURES_ONLY:
                        k = trained_classes(protocol, dataset)
                        cost.reference += SEEDS * shots * k * per_image
                    if not trains:
                        continue
                    k, config, per_epoch = training(method, protocol, dataset, shots, backbone)
                    views[dataset] = max(views[dataset], config.epochs)
                    steps = SEEDS * config.epochs * per_epoch
                    cost.ours += steps * timed.ours(k) / 1000
                    reference_ms = timed.reference(k)
                    if config.batch_size != timed.batch:
                        reference_ms += timed.image_passes * (
                            _image_ms(image_ms, config.batch_size) - image_ms[timed.batch]
                        )
                    cost.reference += steps * reference_ms / 1000
                    cost.reference += SEEDS * sizes.test * per_image
                    if method_name == PER_IMAGE_PROMPTS:
                        test = sizes.test
                        cost.ours += SEEDS * per_image_scoring_ms(test, timed.ours(k)) / 1000
                        reference_scoring = per_image_scoring_ms(test, timed.reference(k))
                        cost.reference += SEEDS * reference_scoring / 1000
        extraction = 0.0
        for dataset, sizes in datasets.items():
            k = trained_classes(protocol, dataset)
            per_seed = sum(shots * k for shots in shots_list)
            encoded = encoded_views(sizes.train, sizes.test, per_seed, SEEDS, views[dataset])
            extraction += encoded / extraction_rate
        ours = sum(c.ours for c in costs.values()) + extraction
        reference = sum(c.reference for c in costs.values())
        out["matrices"].append(
            {
                "protocol": protocol,
                "runs": cells,
                "methods": {
                    name: {"ours_h": c.ours / 3600, "reference_h": c.reference / 3600}
                    for name, c in costs.items()
                },
                "extraction_h": extraction / 3600,
                "ours_h": ours / 3600,
                "reference_h": reference / 3600,
            }
        )
    out["not_measured"] = sorted(skipped)
    out["assumptions"] = list(ASSUMPTIONS)
    return out


def _image_ms(image_ms: dict[int, float], batch: int) -> float:
    if batch not in image_ms:
        raise UserError(
            f"the report has no reference image-pass time at batch {batch} (it has "
            f"{', '.join(map(str, sorted(image_ms)))}); run the bench again to measure it"
        )
    return image_ms[batch]


def render(result: dict) -> str:
    """The estimate as GitHub tables with its assumptions."""
    from tabulate import tabulate

    parts = [
        f"Estimated device hours on {result['device']} ({result['backbone']}), "
        f"{SEEDS} seeds, reference presets:"
    ]
    for matrix in result["matrices"]:
        rows = [
            (name, f"{m['ours_h']:.2f}", f"{m['reference_h']:.2f}", _ratio(m))
            for name, m in matrix["methods"].items()
        ]
        extraction = f"{matrix['extraction_h']:.2f}"
        rows.append(("feature extraction (ours, one time)", extraction, "", ""))
        total = (f"{matrix['ours_h']:.2f}", f"{matrix['reference_h']:.2f}", _ratio(matrix))
        rows.append(("total", *total))
        table = tabulate(
            rows, headers=("method", "ours h", "reference h", "reference / ours"), tablefmt="github"
        )
        parts += ["", f"{matrix['protocol']}: {matrix['runs']} runs", "", table]
    if result["not_measured"]:
        parts += ["", f"left out (no measured step): {', '.join(result['not_measured'])}"]
    parts += ["", "assumptions:", *(f"- {a}" for a in result["assumptions"])]
    return "\n".join(parts)


def _ratio(entry: dict) -> str:
    return f"{entry['reference_h'] / entry['ours_h']:.1f}x" if entry["ours_h"] > 0 else ""
