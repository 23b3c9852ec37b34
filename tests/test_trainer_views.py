"""A config that cycles through V augmented views reads views e mod V, and only those."""

from __future__ import annotations

import torch

from tests.test_seed_batching import _runs


def test_cycled_views_read_only_the_first_views(toy_registry, tiny_engine):
    from vlprompt_methods.coop import METHOD, Config

    runs = _runs(toy_registry, tiny_engine, [1])
    augmentation = runs[0].augmentation
    cycled = METHOD.train(runs, Config(n_ctx=4, epochs=4, batch_size=4, views=2), tiny_engine)
    features = tiny_engine.features
    assert features.view_folder(1, augmentation, seed=1).is_dir()
    assert not features.view_folder(2, augmentation, seed=1).exists()
    assert not features.view_folder(1, augmentation, seed=2).exists()  # the run's seed only
    fresh = METHOD.train(runs, Config(n_ctx=4, epochs=4, batch_size=4), tiny_engine)
    assert features.view_folder(3, augmentation, seed=1).is_dir()
    assert not torch.allclose(cycled[0].ctx, fresh[0].ctx)


def test_as_many_views_as_epochs_is_the_reference(toy_registry, tiny_engine):
    from vlprompt_methods.coop import METHOD, Config

    runs = _runs(toy_registry, tiny_engine, [1])
    cycled = METHOD.train(runs, Config(n_ctx=4, epochs=3, batch_size=4, views=3), tiny_engine)
    fresh = METHOD.train(runs, Config(n_ctx=4, epochs=3, batch_size=4), tiny_engine)
    torch.testing.assert_close(cycled[0].ctx, fresh[0].ctx, rtol=0, atol=0)
