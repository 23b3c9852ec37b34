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

(c) feature extraction from JPEG files to cached features (images/s, with the workers used),
    and its two stages apart: JPEG decoding with the view's transform (the loader alone) and
    the image encoder alone, so that the report says which of them bounds extraction;
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmark.backbone import Backbone, BackboneSpec
from benchmark.datasets.spec import REFERENCE_AUGMENTATION, Sample
from benchmark.engine import Engine
from benchmark.features import FeatureCache
from benchmark.method import Setting
from benchmark.perf.reference_step import (
    ReferenceDesign,
    design_of,
    image_pass,
    reference_dtype,
    reference_step,
)
from benchmark.perf.synthetic import classnames, synthetic_runs, write_jpeg
from benchmark.prompting.trainer import steps_per_epoch
from benchmark.protocol import TrainData
from benchmark.registry import Registry, build_registry

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


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeat: int, warmup: int = 1) -> float:
    """Mean seconds of ``fn`` over ``repeat`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeat


class PeakMemory:
    """Peak CUDA memory (GiB) inside the block, allocated by tensors (``gib``) and reserved by
    torch's caching allocator (``reserved_gib``, what the device lends the process); None on
    the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.gib: float | None = None
        self.reserved_gib: float | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.gib = torch.cuda.max_memory_allocated(self.device) / 2**30
            self.reserved_gib = torch.cuda.max_memory_reserved(self.device) / 2**30


# -- (b) our step ----------------------------------------------------------------------------


def bench_config(method, backbone: str, batch: int = BATCH):
    """The method's few-shot reference preset with the bench's batch and context length."""
    config = method.config(Setting("few_shot", "bench", 16, backbone, "reference"))
    changes: dict[str, object] = {"batch_size": min(batch, config.batch_size)}
    if config.n_ctx != N_CTX:
        changes.update(n_ctx=N_CTX, ctx_init="")
    return dataclasses.replace(config, **changes)


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
    short = timed(lambda: train(1), engine.device, 1, warmup=0)
    long = timed(lambda: train(1 + repeat), engine.device, 1, warmup=0)
    ms = 1000 * (long - short) / (repeat * steps * len(runs))
    return ms, flops


# -- (c) feature extraction ------------------------------------------------------------------


def extraction_rates(backbone: Backbone, n_images: int, workers: int) -> dict:
    """Images/s of feature extraction from ``n_images`` photo-like JPEG files of
    :data:`JPEG_SIZE` (test view, ``workers`` loader workers): end to end (file to cached
    feature), and its two stages apart: decoding (JPEG decode, resize, crop, normalise: the
    loader alone, as the cache runs it) and encoding (the image encoder on ready pixel
    batches, host-to-device copy included). Whichever stage is slower bounds extraction."""
    from torch.utils.data import DataLoader

    from benchmark.features import BATCH_SIZE, _collate, _Images
    from benchmark.views import TEST_VIEW

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rng = np.random.default_rng(0)
        paths = [str(folder / f"{i}.jpg") for i in range(n_images)]
        for path in paths:
            write_jpeg(Path(path), *JPEG_SIZE, rng)
        kib = sum(Path(p).stat().st_size for p in paths) / n_images / 1024
        images = _Images(paths, [TEST_VIEW], backbone.image_size, REFERENCE_AUGMENTATION)
        loader = DataLoader(images, batch_size=BATCH_SIZE, num_workers=workers, collate_fn=_collate)
        start = time.perf_counter()
        for _ in loader:
            pass
        decode = n_images / (time.perf_counter() - start)
        size = backbone.image_size
        pixels = torch.randn(BATCH_SIZE, 3, size, size)
        batches = max(1, n_images // BATCH_SIZE)
        seconds = timed(lambda: backbone.encode_images(pixels), backbone.device, batches)
        encode = BATCH_SIZE / seconds
        cache = FeatureCache(folder / "cache", backbone, workers=workers)
        samples = [Sample(path, 0, "") for path in paths]
        sync(backbone.device)
        start = time.perf_counter()
        cache.features(samples)
        sync(backbone.device)
        end_to_end = n_images / (time.perf_counter() - start)
    return {
        "extraction_images_per_s": end_to_end,
        "decode_images_per_s": decode,
        "encode_images_per_s": encode,
        "extraction_workers": workers,
        "jpeg_kib": kib,
    }


# -- (d) the GPU's matmul throughput ---------------------------------------------------------


def matmul_peak_tflops(device: torch.device, size: int = MATMUL_SIZE) -> float:
    """Measured bf16 matrix-multiply TFLOP/s of a CUDA device (a size x size x size matmul)."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    seconds = timed(lambda: a @ b, device, repeat=20, warmup=3)
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
    registry: Registry | None = None,
) -> dict:
    """Measure (a)-(d) for the ``methods`` of ``registry`` (default: the built-in ones);
    returns the report (see :func:`render`)."""
    registry = registry or build_registry(autoload=False)
    loaded = {name: registry.methods.get(name).load() for name in methods}
    designs = reference_designs(loaded)
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
    configs = {name: bench_config(m, backbone_spec.name) for name, m in loaded.items()}
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(backbone, FeatureCache(Path(tmp) / "cache", backbone))
        for k in class_counts:
            names = classnames(k)
            for name, method in loaded.items():
                config = configs[name]
                batch = config.batch_size
                folder = Path(tmp) / f"k{k}-b{batch}"
                runs = synthetic_runs(engine, names, seeds, 2 * batch, folder, 1 + repeat)
                progress(f"{name}, {k} classes, batch {batch}: our step ({seeds} runs batched)")
                with PeakMemory(backbone.device) as ours_peak:
                    ours, flops = our_step(method, config, engine, runs, repeat)
                progress(f"{name}, {k} classes, batch {batch}: reference-design step")
                with PeakMemory(backbone.device) as reference_peak:
                    step, _ = reference_step(
                        reference, backbone.model, designs[name], names, batch, N_CTX
                    )
                    reference_ms = 1000 * timed(step, backbone.device, repeat)
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
                            designs[name].image_passes,
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
        seconds = timed(image_pass(reference, batch), backbone.device, repeat)
        report["reference_image_ms"][str(batch)] = 1000 * seconds
    progress(f"feature extraction: {images} JPEG images, {workers} workers")
    report.update(extraction_rates(backbone, images, workers))
    return report


def reference_designs(methods: Mapping[str, object]) -> dict[str, ReferenceDesign]:
    """The reference design of each loaded method (by name); a ValueError names the methods
    without one."""
    designs = {name: design_of(name, method) for name, method in methods.items()}
    missing = [name for name, design in designs.items() if design is None]
    if missing:
        raise ValueError(
            f"no reference-design step for {', '.join(missing)}: a method declares one with a "
            "reference_design attribute (benchmark.perf.reference_step.ReferenceDesign)"
        )
    return designs


def benchable(registry: Registry) -> list[str]:
    """The registered methods that have a reference design, in the registry's order."""
    return [n for n in registry.methods if design_of(n, registry.methods.get(n).load()) is not None]


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
    if "decode_images_per_s" in report:
        lines.append(extraction_summary(report))
    if peak:
        lines.append(f"measured bf16 matmul throughput: {peak:.0f} TFLOP/s")
    return "\n".join(lines)


def extraction_bound(report: dict) -> str:
    """The slower stage of extraction: "decoding" or "encoding"."""
    decode, encode = report["decode_images_per_s"], report["encode_images_per_s"]
    return "decoding" if decode < encode else "encoding"


def extraction_summary(report: dict) -> str:
    """One line: the stage rates of extraction and which of them bounds it."""
    return (
        f"decoding alone {report['decode_images_per_s']:.1f} images/s "
        f"({report['extraction_workers']} workers, {JPEG_SIZE[0]}x{JPEG_SIZE[1]} JPEGs of "
        f"{report['jpeg_kib']:.0f} KiB), encoding alone {report['encode_images_per_s']:.1f} "
        f"images/s: bound by {extraction_bound(report)}"
    )
