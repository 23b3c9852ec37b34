"""``python -m benchmark bench``: training-step throughput, ours against the reference design.

Side by side, in one process, on the same open_clip model:

(a) a reference-design step: the whole model in fp16 on CUDA (fp32 on the CPU, which has no
    fast fp16), the image encoder run on every step's batch of pixels, the text encoder run
    over all 77 token positions, one run at a time, with the passes the reference method
    makes per step (ProGrad: a second image pass for the zero-shot teacher and a second
    backward; GCSCoOp: two forward/backward passes);
(b) our step: the method's own ``train`` on cached features, with the EOT cut, ``seeds`` runs
    batched, bf16 autocast on CUDA; timed as the difference between two training lengths,
    so set-up and feature extraction are not counted; reported per run-step;
(c) feature extraction from JPEG files to cached features (images/s, with the workers used);
(d) the text encoder's achieved TFLOP/s in our step (forward and input-gradient backward,
    counted from the layer shapes).

Random weights are fine for timing; nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmark.backbone import Backbone, BackboneSpec
from benchmark.datasets.spec import Sample
from benchmark.engine import Engine
from benchmark.features import FeatureCache, image_key
from benchmark.protocol import Classes, TrainData
from benchmark.registry import build_registry

BATCH = 32
N_CTX = 16
#: Per reference-design step: (image-encoder passes, text forward/backward passes).
REFERENCE_PASSES = {
    "coop": (1, 1),
    "kgcoop": (1, 1),
    "prograd": (2, 2),
    "gcscoop": (2, 2),
    "scoop": (2, 2),
    "cocoop": (1, 1),
}


@dataclass
class Row:
    method: str
    classes: int
    reference_ms: float | None
    ours_ms: float
    speedup: float | None
    text_tflops: float
    peak_memory_gib: float | None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device, repeat: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeat


def classnames(k: int) -> tuple[str, ...]:
    colours = (
        "red",
        "green",
        "blue",
        "yellow",
        "black",
        "white",
        "purple",
        "orange",
        "pink",
        "brown",
        "grey",
        "golden",
        "silver",
        "striped",
        "spotted",
        "wooden",
        "glass",
        "metal",
        "paper",
        "plastic",
    )
    things = (
        "cat",
        "dog",
        "car",
        "bird",
        "house",
        "tree",
        "flower",
        "boat",
        "chair",
        "lamp",
        "truck",
        "horse",
        "apple",
        "clock",
        "guitar",
        "bottle",
        "shoe",
        "kite",
        "bridge",
        "train",
        "robot",
        "castle",
        "piano",
        "rocket",
        "violin",
    )
    names = [f"{c} {t}" for t in things for c in colours]
    return tuple(
        names[i % len(names)] + (f" {i // len(names)}" if i >= len(names) else "") for i in range(k)
    )


# -- (a) the reference design ------------------------------------------------------------------


def reference_step(backbone: Backbone, k: int, image_passes: int, text_passes: int):
    """A CoOp-family step as the reference code makes it: returns the step function."""
    model, device = backbone.model, backbone.device
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    ref = model.to(dtype) if dtype != torch.float32 else model
    tower = backbone.text
    tokens = backbone.tokenize([" ".join(["X"] * N_CTX) + f" {n}." for n in classnames(k)])
    with torch.no_grad():
        embedded = tower.token_embedding(tokens).to(dtype)
    prefix, suffix = embedded[:, :1], embedded[:, 1 + N_CTX :]
    eot = tokens.argmax(-1)
    ctx = (torch.randn(N_CTX, embedded.shape[-1], device=device) * 0.02).to(dtype)
    ctx.requires_grad_(True)
    optimiser = torch.optim.SGD([ctx], lr=0.002, momentum=0.9, weight_decay=5e-4)
    size = backbone.image_size
    pixels = torch.randn(BATCH, 3, size, size, device=device, dtype=dtype)
    labels = torch.randint(0, k, (BATCH,), device=device)
    scale = backbone.logit_scale

    def text_features() -> torch.Tensor:
        x = torch.cat([prefix, ctx.expand(k, -1, -1), suffix], dim=1)
        x = x + tower.positional_embedding.to(dtype)
        x = tower.transformer(x, attn_mask=tower.attn_mask.to(dtype))
        x = tower.ln_final(x)[torch.arange(k, device=device), eot] @ tower.text_projection
        return F.normalize(x, dim=-1)

    def step() -> None:
        optimiser.zero_grad()
        for _ in range(image_passes):
            with torch.no_grad():
                image = F.normalize(ref.encode_image(pixels), dim=-1)
        for _ in range(text_passes):
            loss = F.cross_entropy(scale * image @ text_features().T, labels)
            loss.backward()
        optimiser.step()

    return step


# -- (b) our step ----------------------------------------------------------------------------


def synthetic_runs(engine: Engine, k: int, seeds: Sequence[int], folder: Path, epochs: int):
    """Training data of ``k`` classes whose features are already in the cache (random)."""
    n = 2 * BATCH
    folder.mkdir(parents=True, exist_ok=True)
    names = classnames(k)
    generator = torch.Generator().manual_seed(0)
    runs = []
    for seed in seeds:
        samples = []
        for i in range(n):
            path = folder / f"s{seed}-{i}.jpg"
            path.touch()
            samples.append(
                Sample(str(path), int(torch.randint(0, k, (1,), generator=generator)), "")
            )
        runs.append(
            TrainData(
                "bench", 16, seed, tuple(samples), (), Classes("bench", names, "a photo of a {}.")
            )
        )
    dim = engine.backbone.embed_dim
    for view in range(epochs):
        index = engine.features._load_view(view)
        for run in runs:
            for sample in run.samples:
                index[image_key(sample.path)] = torch.randn(dim, generator=generator)
    return runs


def our_step_ms(method, config, engine: Engine, runs, short: int, long: int) -> float:
    """Per run-step milliseconds of ``method.train``: (T(long) - T(short)) / extra steps."""
    steps_per_epoch = len(runs[0].samples) // config.batch_size

    def train(epochs: int) -> float:
        cfg = dataclasses.replace(config, epochs=epochs)
        _sync(engine.device)
        start = time.perf_counter()
        method.train(runs, cfg, engine)
        _sync(engine.device)
        return time.perf_counter() - start

    train(short)  # warm-up
    extra = train(long) - train(short)
    return 1000 * extra / ((long - short) * steps_per_epoch * len(runs))


def text_encoder_flops(backbone: Backbone, prompts: int, length: int) -> float:
    """FLOPs of one forward and one input-gradient backward of the text transformer."""
    tower = backbone.text
    width = tower.token_embedding.weight.shape[1]
    layers = len(tower.transformer.resblocks)
    mlp = tower.transformer.resblocks[0].mlp.c_fc.out_features
    per_token = layers * (2 * (4 * width * width + 2 * width * mlp) + 4 * length * width)
    return 2 * prompts * length * per_token  # backward w.r.t. inputs costs about a forward


# -- (c) feature extraction ------------------------------------------------------------------


def extraction_throughput(backbone: Backbone, n_images: int, workers: int) -> float:
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        generator = torch.Generator().manual_seed(0)
        samples = []
        for i in range(n_images):
            pixels = torch.randint(0, 255, (256, 320, 3), generator=generator, dtype=torch.uint8)
            path = folder / f"{i}.jpg"
            Image.fromarray(pixels.numpy()).save(path, quality=90)
            samples.append(Sample(str(path), 0, ""))
        cache = FeatureCache(folder / "cache", backbone, workers=workers)
        _sync(backbone.device)
        start = time.perf_counter()
        cache.features(samples)
        _sync(backbone.device)
        return n_images / (time.perf_counter() - start)


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
    backbone = Backbone(backbone_spec, device)
    registry = build_registry(autoload=False)
    report: dict = {
        "backbone": backbone_spec.name,
        "device": torch.cuda.get_device_name() if backbone.device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "seeds_batched": seeds,
        "batch": BATCH,
        "rows": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(backbone, FeatureCache(Path(tmp) / "cache", backbone))
        for k in class_counts:
            runs = synthetic_runs(engine, k, range(1, seeds + 1), Path(tmp) / f"k{k}", 4)
            for name in methods:
                method = registry.methods.get(name).load()
                base = method.config(_setting())
                config = dataclasses.replace(base, batch_size=BATCH)
                if backbone.device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                progress(f"{name}, {k} classes: our step")
                ours = our_step_ms(method, config, engine, runs, 2, 2 + repeat)
                peak = (
                    torch.cuda.max_memory_allocated() / 2**30
                    if backbone.device.type == "cuda"
                    else None
                )
                length = int(
                    engine.tower.tokens(
                        [" ".join(["X"] * N_CTX) + f" {n}." for n in classnames(k)]
                    )[0].shape[1]
                )
                flops = text_encoder_flops(backbone, k * seeds, length)
                tflops = flops / (ours * seeds / 1000) / 1e12
                reference = None
                if name in REFERENCE_PASSES:
                    progress(f"{name}, {k} classes: reference-design step")
                    fresh = Backbone(backbone_spec, device)
                    step = reference_step(fresh, k, *REFERENCE_PASSES[name])
                    reference = 1000 * _timed(step, fresh.device, repeat)
                    del fresh, step
                report["rows"].append(
                    dataclasses.asdict(
                        Row(
                            name,
                            k,
                            reference,
                            ours,
                            reference / ours if reference else None,
                            tflops,
                            peak,
                        )
                    )
                )
    progress(f"feature extraction: {images} JPEG images, {workers} workers")
    report["extraction_images_per_s"] = extraction_throughput(backbone, images, workers)
    report["extraction_workers"] = workers
    return report


def _setting():
    """The few-shot reference preset, the setting of the papers' step timings."""
    from benchmark.method import Setting

    return Setting("few_shot", "bench", 16, "", "reference")


def render(report: dict) -> str:
    from tabulate import tabulate

    rows = [
        (
            r["method"],
            r["classes"],
            _ms(r["reference_ms"]),
            _ms(r["ours_ms"]),
            f"{r['speedup']:.1f}x" if r["speedup"] else "",
            f"{r['text_tflops']:.3f}",
            f"{r['peak_memory_gib']:.2f}" if r["peak_memory_gib"] is not None else "",
        )
        for r in report["rows"]
    ]
    table = tabulate(
        rows,
        headers=(
            "method",
            "classes",
            "reference ms/step",
            "ours ms/run-step",
            "speed-up",
            "text TFLOP/s",
            "peak GiB",
        ),
        tablefmt="github",
    )
    return (
        f"{report['backbone']} on {report['device']} (torch {report['torch']}), batch "
        f"{report['batch']}, {report['seeds_batched']} seeds batched\n\n{table}\n\n"
        f"feature extraction: {report['extraction_images_per_s']:.1f} images/s with "
        f"{report['extraction_workers']} workers"
    )


def _ms(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else ""
