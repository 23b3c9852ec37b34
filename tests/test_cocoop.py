"""CoCoOp: meta-net shapes and init, per-image prompts, chunked scoring, batched seeds."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from vlprompt_methods import cocoop
from vlprompt_methods.cocoop import conditional_logits, meta_net, meta_shift

from benchmark.prompting.classifier import cosine_logits
from benchmark.prompting.method import PromptConfig
from benchmark.prompting.text import PromptEncoder
from tests.test_methods_contract import toy_runs, toy_splits


def test_meta_net_shapes_and_init():
    net = meta_net([1, 2], 64, 24)
    assert [tuple(p.shape) for p in net] == [(2, 64, 4), (2, 4), (2, 4, 24), (2, 24)]
    assert net[0].abs().max() <= 1 / math.sqrt(64) and net[2].abs().max() <= 1 / math.sqrt(4)
    again = meta_net([2], 64, 24)
    for p, q in zip(net, again, strict=True):
        torch.testing.assert_close(p[1], q[0], rtol=0, atol=0)  # seeded by the run's seed
    assert not torch.equal(net[0][0], net[0][1])
    x = F.normalize(torch.randn(2, 5, 64), dim=-1)
    pi = meta_shift(net, x)
    assert pi.shape == (2, 5, 24)
    linear = F.linear(F.relu(F.linear(x[1], net[0][1].T, net[1][1])), net[2][1].T, net[3][1])
    torch.testing.assert_close(pi[1], linear)


def test_conditional_logits(tiny_engine):
    tower = tiny_engine.tower
    names = ("red square", "green circle", "blue triangle")
    encoder = PromptEncoder(tower, names, 4)
    width = tower.tower.token_embedding.weight.shape[1]
    dim = tiny_engine.backbone.embed_dim
    ctx = torch.randn(2, 4, width) * 0.02
    net = meta_net([1, 2], dim, width)
    x = F.normalize(torch.randn(2, 3, dim), dim=-1)
    logits = conditional_logits(encoder, ctx, net, x, 10.0)
    assert logits.shape == (2, 3, 3)
    # image b of run s: CoOp logits with context ctx[s] + pi(x_b)
    pi = meta_shift(net, x)
    for s in range(2):
        for b in range(3):
            texts = F.normalize(encoder((ctx[s] + pi[s, b])[None]), dim=-1)
            expected = cosine_logits(x[s, b][None], texts, 10.0)[0]
            torch.testing.assert_close(logits[s, b], expected, rtol=1e-5, atol=1e-5)
    # a zero meta-net output gives CoOp's logits
    zero = [net[0], net[1], torch.zeros_like(net[2]), torch.zeros_like(net[3])]
    coop = cosine_logits(x, F.normalize(encoder(ctx[:, None]), dim=-1), 10.0)
    torch.testing.assert_close(conditional_logits(encoder, ctx, zero, x, 10.0), coop)


def test_batched_seeds_and_chunked_scores(toy_root, tiny_engine, monkeypatch):
    config = PromptConfig(n_ctx=4, ctx_init="a photo of a", epochs=1, batch_size=2)
    runs = toy_runs(toy_root, [1, 2, 3])
    together = cocoop.METHOD.train(runs, config, tiny_engine)
    for run, batched in zip(runs, together, strict=True):
        (alone,) = cocoop.METHOD.train([run], config, tiny_engine)
        torch.testing.assert_close(batched.ctx, alone.ctx, rtol=1e-5, atol=1e-6)
        for p, q in zip(batched.net, alone.net, strict=True):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(together[0].net[0], together[1].net[0])
    features = tiny_engine.features.features(toy_splits(toy_root).test)
    classes = runs[0].classes
    whole = together[0].scores(features, classes)
    monkeypatch.setattr(cocoop, "CHUNK_PROMPTS", 2 * len(classes.names))  # chunks of 2 images
    torch.testing.assert_close(together[0].scores(features, classes), whole)
    assert whole.shape == (len(features), len(classes.names))
