"""The EOT-cut text encoder against open_clip's own full 77-token pass."""

from __future__ import annotations

import torch

from benchmark.prompting.context import initial_context
from benchmark.prompting.text import PromptEncoder


def test_cut_sequence_equals_full_77_token_pass(tiny_engine):
    tower = tiny_engine.tower
    texts = ["a photo of a red square.", "a blurry photo of a very large green circle."]
    full = tiny_engine.backbone.model.encode_text(tiny_engine.backbone.tokenize(texts))
    tokens, _ = tower.tokens(texts)
    assert tokens.shape[1] < 77
    torch.testing.assert_close(tower.encode_texts(texts), full, rtol=1e-5, atol=1e-5)


def test_learned_context_equal_to_words_gives_the_words_features(tiny_engine):
    names = ("red square", "green circle", "blue triangle")
    ctx = initial_context(tiny_engine.tower, "a photo of a", 0, [1, 2]).ctx  # (S, 4, d)
    encoder = PromptEncoder(tiny_engine.tower, names, n_ctx=4)
    features = encoder(ctx[:, None])  # (S, K, D)
    model = tiny_engine.backbone.model
    expected = model.encode_text(
        tiny_engine.backbone.tokenize([f"a photo of a {n}." for n in names])
    )
    assert features.shape == (2, 3, expected.shape[1])
    torch.testing.assert_close(features[0], expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(features[1], expected, rtol=1e-5, atol=1e-5)


def test_per_image_context_shapes(tiny_engine):
    encoder = PromptEncoder(tiny_engine.tower, ("a", "b", "c"), n_ctx=2)
    width = tiny_engine.tower.tower.token_embedding.weight.shape[1]
    ctx = torch.randn(2, 5, 1, 2, width)  # (S, B, 1, M, d): one context per image
    assert encoder(ctx).shape == (2, 5, 3, tiny_engine.backbone.embed_dim)


def test_shared_prefix_pass_equals_the_whole_sequence_pass(tiny_engine):
    tower = tiny_engine.tower
    assert tower.shares_prefixes
    names = ("red square", "a very large green circle", "cat", "blue striped triangle")
    encoder = PromptEncoder(tower, names, n_ctx=3)
    width = tower.tower.token_embedding.weight.shape[1]
    ctx = torch.randn(2, 3, 1, 3, width, requires_grad=True)  # (S, B, 1, M, d)
    shared = encoder(ctx)
    # the whole sequences, one per (run, image, class), padded to the longest name
    tokens, eot = tower.tokens([f"X X X {name}." for name in names])
    x = tower.embed(tokens).expand(2, 3, -1, -1, -1).clone()
    x[..., 1:4, :] = ctx
    whole = tower.encode(x.reshape(-1, *x.shape[-2:]), eot.repeat(2 * 3))
    whole = whole.view(2, 3, len(names), -1)
    torch.testing.assert_close(shared, whole, rtol=1e-5, atol=1e-5)
    (g_shared,) = torch.autograd.grad(shared.square().sum(), ctx)
    (g_whole,) = torch.autograd.grad(whole.square().sum(), ctx)
    torch.testing.assert_close(g_shared, g_whole, rtol=1e-4, atol=1e-5)


def test_class_specific_context_in_groups_of_name_length(tiny_engine):
    """One context per class: each class's features come from its own context, whatever
    length group the class falls in."""
    tower = tiny_engine.tower
    names = ("cat", "a very large green circle", "red square", "dog")
    width = tower.tower.token_embedding.weight.shape[1]
    ctx = torch.randn(2, len(names), 2, width)  # (S, K, M, d)
    features = PromptEncoder(tower, names, n_ctx=2)(ctx)
    for k, name in enumerate(names):
        alone = PromptEncoder(tower, (name,), n_ctx=2)(ctx[:, k : k + 1])
        torch.testing.assert_close(features[:, k : k + 1], alone, rtol=1e-5, atol=1e-5)
