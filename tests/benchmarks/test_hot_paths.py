"""Micro-benchmarks of the CPU hot paths (pytest-benchmark).

By default (``--benchmark-disable`` in pyproject's addopts, as in CI) each body runs once as
a plain test, so the benchmarks cannot rot; they assert what they compute, never a time.
Time them for real with::

    pytest tests/benchmarks --benchmark-enable

(add ``--benchmark-autosave`` / ``--benchmark-compare`` to keep and compare runs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.datasets.spec import REFERENCE_AUGMENTATION, Sample
from benchmark.features import FeatureCache, image_key
from benchmark.leaderboard import leaderboard
from benchmark.prompting.text import PromptEncoder

SEEDS, CLASSES, N_CTX = 3, 20, 16
CACHED_IMAGES = 4000


def test_text_encoder_step(benchmark, tiny_engine) -> None:
    """Forward and input-gradient backward of S x K prompts through the tiny text encoder."""
    names = tuple(f"class {i}" for i in range(CLASSES))
    encoder = PromptEncoder(tiny_engine.tower, names, N_CTX)
    width = tiny_engine.tower.tower.token_embedding.weight.shape[1]
    ctx = (torch.randn(SEEDS, 1, N_CTX, width) * 0.02).requires_grad_(True)

    def step() -> torch.Tensor:
        features = encoder(ctx)
        (grad,) = torch.autograd.grad(features.square().sum(), [ctx])
        return grad

    grad = benchmark(step)
    assert grad.shape == ctx.shape and grad.abs().sum() > 0


def test_conditional_prompts_scoring(benchmark, tmp_path) -> None:
    """CoCoOp's scoring on the mini world's CLIP: 34 images (one scoring chunk) x the
    source's 120 class names, one prompt per (image, class)."""
    from vlprompt_methods.cocoop import conditional_logits, meta_net

    from benchmark.backbone import Backbone, BackboneSpec
    from benchmark.engine import Engine
    from benchmark.miniworld.generate import spec_of
    from benchmark.miniworld.model import CHECKPOINT, MODEL_NAME

    backbone = Backbone(BackboneSpec(MODEL_NAME, None, CHECKPOINT))
    engine = Engine(backbone, FeatureCache(tmp_path, backbone))
    names = spec_of("mini_shapes").classes
    encoder = PromptEncoder(engine.tower, names, 4)
    width = engine.tower.tower.token_embedding.weight.shape[1]
    ctx = torch.randn(1, 4, width) * 0.02
    net = meta_net([1], backbone.embed_dim, width)
    images = torch.nn.functional.normalize(torch.randn(1, 34, backbone.embed_dim), dim=-1)

    def score() -> torch.Tensor:
        with torch.no_grad():
            return conditional_logits(encoder, ctx, net, images, backbone.logit_scale)

    logits = benchmark(score)
    assert logits.shape == (1, 34, len(names)) and logits.isfinite().all()


@pytest.fixture
def cached(tiny_engine, tmp_path) -> list[Sample]:
    """CACHED_IMAGES images whose view-0 features are on disk in one shard."""
    samples = []
    for i in range(CACHED_IMAGES):
        path = tmp_path / f"{i}.jpg"
        path.touch()
        samples.append(Sample(str(path), i % 10, ""))
    cache = tiny_engine.features
    features = torch.randn(CACHED_IMAGES, tiny_engine.backbone.embed_dim)
    cache._write_shard(
        cache._slot(0, REFERENCE_AUGMENTATION, 0), [image_key(s.path) for s in samples], features
    )
    return samples


def test_feature_cache_cold_read(benchmark, tiny_engine, cached) -> None:
    """A fresh cache reading one view of every image from its shard (a new cell's first read)."""
    root = tiny_engine.features.folder.parents[1]

    def read() -> torch.Tensor:
        return FeatureCache(root, tiny_engine.backbone).features(cached, view=0)

    features = benchmark(read)
    assert features.shape == (CACHED_IMAGES, tiny_engine.backbone.embed_dim)


def test_feature_cache_warm_read(benchmark, tiny_engine, cached) -> None:
    """An epoch's read of the training features from the in-memory index."""
    cache = tiny_engine.features
    cache.features(cached, view=0)
    features = benchmark(cache.features, cached, 0)
    assert features.shape == (CACHED_IMAGES, tiny_engine.backbone.embed_dim)


def test_leaderboard_100k_rows(benchmark) -> None:
    rng = np.random.default_rng(0)
    n = 100_000
    df = pd.DataFrame(
        {
            "method": rng.choice([f"m{i}" for i in range(8)], n),
            "protocol": "few_shot",
            "dataset": rng.choice([f"d{i}" for i in range(11)], n),
            "split": "all",
            "shots": rng.choice([1, 2, 4, 8, 16], n),
            "seed": rng.choice([1, 2, 3], n),
            "backbone": "ViT-B-16",
            "pretrained": "openai",
            "metric": "accuracy",
            "value": rng.uniform(0, 100, n),
            "status": "ok",
        }
    )
    df["eval_dataset"] = df["dataset"]
    text = benchmark(leaderboard, df)
    assert text.count("## few_shot") == 5
