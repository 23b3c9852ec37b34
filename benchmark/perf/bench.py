"""``python -m benchmark bench``: training-step throughput, ours against the reference design.

Side by side, in one process, on the same open_clip model (random weights: nothing is
downloaded), for each method and class count K:

(a) the reference design's step (:mod:`benchmark.perf.reference_step`): fp16 CLIP on CUDA, the
    image encoder on every step, 77-token text passes, one run at a time;
(b) our step: the method's own ``train`` on cached features, with the EOT cut, ``seeds``
    runs batched, bf16 autocast on CUDA. It is timed as the difference between two training
    lengths, so set-up and feature extraction are not counted, and reported per run-step
    (one step of one run: the batched call's time divided by the runs in it);

and once per backbone:

(c) feature extraction from JPEG files to cached features (images/s, with the workers used);
(d) the text encoder's achieved TFLOP/s in our step: the FLOPs torch's FLOP counter counts
    in the text transformer during training steps (forward and every backward the method
    makes), over the step's time; on CUDA also as a share of the GPU's bf16 matrix-multiply
    throughput, measured in-process with a large bf16 matmul.

Every row uses batch 32 and 16 context tokens: a method whose reference preset has a
smaller batch keeps it (CoCoOp: 1; its text pass grows with the batch, so 32 would not fit
in memory at K = 1000), and a method whose preset starts from a 4-token phrase starts from
16 random context tokens instead (cost depends on the context length, not its values). The
reference's image-encoder pass is also timed alone at each preset batch, for the estimate
(:mod:`benchmark.perf.estimate`).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmark.backbone import Backbone, BackboneSpec
from benchmark.datasets.spec import Sample
from benchmark.engine import Engine
from benchmark.features import FeatureCache
from benchmark.method import Setting
from benchmark.perf.reference_step import IMAGE_PASSES, image_pass, reference_dtype, reference_step
from benchmark.prompting.trainer import steps_per_epoch
from benchmark.protocol import Classes, TrainData
from benchmark.registry import build_registry

BATCH = 32
N_CTX = 16
DEFAULT_METHODS = ("coop", "cocoop", "prograd", "kgcoop", "gcscoop")
MATMUL_SIZE = 8192
#: Side of the JPEG files of the extraction benchmark (about an ImageNet image).
JPEG_SIZE = (500, 375)


@dataclass
class Row:
    """One method at one class count; times in ms, ours per run-step; ``text_gflop``: the
    text transformer's work in one batched step of ours (all runs)."""

    method: str
    classes: int
    batch: int
    reference_ms: float
    ours_ms: float
    speedup: float
    image_passes: int
    text_gflop: float
    text_tflops: float
    text_peak_share: float | None
    reference_peak_gib: float | None
    ours_peak_gib: float | None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device, repeat: int, warmup: int = 1) -> float:
    """Mean seconds of ``fn`` over ``repeat`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeat


class _PeakMemory:
    """Peak CUDA memory (GiB) allocated inside the block; None on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.gib = device, None

    def __enter__(self) -> _PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.gib = torch.cuda.max_memory_allocated(self.device) / 2**30


def classnames(k: int) -> tuple[str, ...]:
    """``k`` distinct two-word class names ("red cat", ...), numbered beyond 500."""
    colours = "red green blue yellow black white purple orange pink brown grey golden silver"
    colours += " striped spotted wooden glass metal paper plastic"
    things = "cat dog car bird house tree flower boat chair lamp truck horse apple clock guitar"
    things += " bottle shoe kite bridge train robot castle piano rocket violin"
    names = [f"{c} {t}" for t in things.split() for c in colours.split()]
    return tuple(
        names[i % len(names)] + (f" {i // len(names)}" if i >= len(names) else "") for i in range(k)
    )


# -- (b) our step ----------------------------------------------------------------------------


def bench_config(method, backbone: str, batch: int = BATCH):
    """The method's few-shot reference preset with the bench's batch and context length."""
    config = method.config(Setting("few_shot", "bench", 16, backbone, "reference"))
    changes: dict[str, object] = {"batch_size": min(batch, config.batch_size)}
    if config.n_ctx != N_CTX:
        changes.update(n_ctx=N_CTX, ctx_init="")
    return dataclasses.replace(config, **changes)


def synthetic_runs(
    engine: Engine, names: tuple[str, ...], seeds: int, batch: int, folder: Path, views: int
) -> list[TrainData]:
    """``seeds`` runs of two batches each whose features are already cached (random)."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    runs = []
    for seed in range(1, seeds + 1):
        samples = []
        for i in range(2 * batch):
            path = folder / f"s{seed}-{i}.jpg"
            path.touch()
            label = int(torch.randint(0, len(names), (1,), generator=generator))
            samples.append(Sample(str(path), label, names[label]))
        classes = Classes("bench", names, "a photo of a {}.")
        runs.append(TrainData("bench", 16, seed, tuple(samples), (), classes))
    samples = [sample for run in runs for sample in run.samples]
    for view in range(views):
        features = torch.randn(len(samples), engine.backbone.embed_dim, generator=generator)
        engine.features.hold(samples, view, features)
    return runs


def step_flops(train: Callable[[int], object], steps: int) -> float:
    """FLOPs per step of ``train(epochs)``: counted over 2 epochs minus 1 epoch, so that set-up
    (anchor features, prompt embeddings) cancels out. Nearly all of them are the text
    encoder's; the rest are the logits and loss of the batch."""

    def count(epochs: int) -> float:
        with FlopCounterMode(display=False) as counter:
            train(epochs)
        return float(counter.get_total_flops())

    return (count(2) - count(1)) / steps


def our_step(method, config, engine: Engine, runs: Sequence[TrainData], repeat: int):
    """(ms per run-step, FLOPs of the text transformer per batched step) of ``method.train``."""
    steps = steps_per_epoch(len(runs[0].samples), config.batch_size)

    def train(epochs: int) -> None:
        method.train(runs, dataclasses.replace(config, epochs=epochs), engine)

    flops = step_flops(train, steps)  # and warm-up
    short = _timed(lambda: train(1), engine.device, 1, warmup=0)
    long = _timed(lambda: train(1 + repeat), engine.device, 1, warmup=0)
    ms = 1000 * (long - short) / (repeat * steps * len(runs))
    return ms, flops


# -- (c) feature extraction ------------------------------------------------------------------


def extraction_throughput(backbone: Backbone, n_images: int, workers: int) -> float:
    """Images/s from JPEG files to cached features (test view), ``workers`` loader workers."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        generator = torch.Generator().manual_seed(0)
        samples = []
        for i in range(n_images):
            shape = (JPEG_SIZE[1], JPEG_SIZE[0], 3)
            pixels = torch.randint(0, 255, shape, generator=generator, dtype=torch.uint8)
            path = folder / f"{i}.jpg"
            Image.fromarray(pixels.numpy()).save(path, quality=90)
            samples.append(Sample(str(path), 0, ""))
        cache = FeatureCache(folder / "cache", backbone, workers=workers)
        _sync(backbone.device)
        start = time.perf_counter()
        cache.features(samples)
        _sync(backbone.device)
        return n_images / (time.perf_counter() - start)


# -- (d) the GPU's matmul throughput ---------------------------------------------------------


def matmul_peak_tflops(device: torch.device, size: int = MATMUL_SIZE) -> float:
    """Measured bf16 matrix-multiply TFLOP/s of a CUDA device (a size x size x size matmul)."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    seconds = _timed(lambda: a @ b, device, repeat=20, warmup=3)
    return 2 * size**3 / seconds / 1e12


# -- the report ------------------------------------------------------------------------------


def run_bench(
    backbone_spec: BackboneSpec,
    device: str,
    methods: Sequence[str],
    class_counts: Sequence[int],
    seeds: int,
    images: int,
    workers: int,
    repeat: int,
    progress: Callable[[str], None] = print,
) -> dict:
    """Measure (a)-(d); returns the report (see :func:`render`)."""
    registry = build_registry(autoload=False)
    unknown = [m for m in methods if m not in IMAGE_PASSES]
    if unknown:
        raise ValueError(f"no reference-design step for {unknown}; valid: {sorted(IMAGE_PASSES)}")
    backbone = Backbone(backbone_spec, device)
    cuda = backbone.device.type == "cuda"
    if reference_dtype(backbone.device) == torch.float32:
        reference = backbone  # the CPU: the reference runs in fp32 too, on the same model
    else:
        reference = Backbone(backbone_spec, device)
        reference.model.to(reference_dtype(backbone.device))
    report: dict = {
        "backbone": backbone_spec.name,
        "weights": backbone_spec.weights,
        "device": torch.cuda.get_device_name(backbone.device) if cuda else "cpu",
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "seeds_batched": seeds,
        "context_tokens": N_CTX,
        "repeat": repeat,
        "matmul_bf16_tflops": matmul_peak_tflops(backbone.device) if cuda else None,
        "rows": [],
    }
    loaded = {name: registry.methods.get(name).load() for name in methods}
    configs = {name: bench_config(m, backbone_spec.name) for name, m in loaded.items()}
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(backbone, FeatureCache(Path(tmp) / "cache", backbone))
        for k in class_counts:
            names = classnames(k)
            for name, method in loaded.items():
                config = configs[name]
                batch = config.batch_size
                folder = Path(tmp) / f"k{k}-b{batch}"
                runs = synthetic_runs(engine, names, seeds, batch, folder, 1 + repeat)
                progress(f"{name}, {k} classes, batch {batch}: our step ({seeds} runs batched)")
                with _PeakMemory(backbone.device) as ours_peak:
                    ours, flops = our_step(method, config, engine, runs, repeat)
                progress(f"{name}, {k} classes, batch {batch}: reference-design step")
                with _PeakMemory(backbone.device) as reference_peak:
                    step, _ = reference_step(reference, backbone.model, name, names, batch, N_CTX)
                    reference_ms = 1000 * _timed(step, backbone.device, repeat)
                    del step
                tflops = flops / (ours * seeds / 1000) / 1e12
                peak = report["matmul_bf16_tflops"]
                report["rows"].append(
                    dataclasses.asdict(
                        Row(
                            name,
                            k,
                            batch,
                            reference_ms,
                            ours,
                            reference_ms / ours,
                            IMAGE_PASSES[name],
                            flops / 1e9,
                            tflops,
                            tflops / peak if peak else None,
                            reference_peak.gib,
                            ours_peak.gib,
                        )
                    )
                )
    batches = sorted({BATCH, *(_preset_batch(m, backbone_spec.name) for m in loaded.values())})
    report["reference_image_ms"] = {}
    for batch in batches:
        progress(f"reference image-encoder pass, batch {batch}")
        seconds = _timed(image_pass(reference, batch), backbone.device, repeat)
        report["reference_image_ms"][str(batch)] = 1000 * seconds
    progress(f"feature extraction: {images} JPEG images, {workers} workers")
    report["extraction_images_per_s"] = extraction_throughput(backbone, images, workers)
    report["extraction_workers"] = workers
    return report


def _preset_batch(method, backbone: str) -> int:
    return method.config(Setting("few_shot", "bench", 16, backbone, "reference")).batch_size


def render(report: dict) -> str:
    """The report as a GitHub table and a few lines of text."""
    from tabulate import tabulate

    def number(value: float | None, digits: int = 2) -> str:
        return "" if value is None else f"{value:.{digits}f}"

    rows = [
        (
            r["method"],
            r["classes"],
            r["batch"],
            number(r["reference_ms"]),
            number(r["ours_ms"]),
            f"{r['speedup']:.1f}x",
            number(r["text_tflops"], 3),
            "" if r["text_peak_share"] is None else f"{100 * r['text_peak_share']:.1f}%",
            number(r["reference_peak_gib"]),
            number(r["ours_peak_gib"]),
        )
        for r in report["rows"]
    ]
    table = tabulate(
        rows,
        headers=(
            "method",
            "classes",
            "batch",
            "reference ms/step",
            "ours ms/run-step",
            "speed-up",
            "text TFLOP/s",
            "of bf16 peak",
            "reference peak GiB",
            "ours peak GiB",
        ),
        tablefmt="github",
    )
    images = ", ".join(f"batch {b}: {ms:.1f} ms" for b, ms in report["reference_image_ms"].items())
    peak = report["matmul_bf16_tflops"]
    lines = [
        f"{report['backbone']} ({report['weights']} weights) on {report['device']} "
        f"({report['cpu_threads']} CPU threads, torch {report['torch']}); "
        f"{report['context_tokens']} context tokens; ours: {report['seeds_batched']} runs "
        f"batched per call",
        "",
        table,
        "",
        f"reference image-encoder pass: {images}",
        f"feature extraction (JPEG to cached features): "
        f"{report['extraction_images_per_s']:.1f} images/s with "
        f"{report['extraction_workers']} loader workers",
    ]
    if peak:
        lines.append(f"measured bf16 matmul throughput: {peak:.0f} TFLOP/s")
    return "\n".join(lines)
