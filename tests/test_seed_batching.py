"""Runs that differ only by seed train together and equal separate runs."""

from __future__ import annotations

import torch

from benchmark.datasets.sampling import few_shot
from benchmark.protocol import Classes, TrainData
from tests.conftest import TOY_DATASET


def _runs(toy_registry, tiny_engine, seeds, shots=2):
    from benchmark.catalog import DatasetCatalog
    from benchmark.datasets.spec import DataContext

    catalog = DatasetCatalog(
        toy_registry.datasets, DataContext(None, tiny_engine.features.folder), [TOY_DATASET]
    )
    splits = catalog.splits(TOY_DATASET)
    classes = Classes(TOY_DATASET, splits.classnames, "a photo of a {}.")
    runs = []
    for seed in seeds:
        train, val = few_shot(splits.train, splits.val, shots, seed)
        runs.append(TrainData(TOY_DATASET, shots, seed, tuple(train), tuple(val), classes))
    return runs


def test_batched_seeds_equal_separate_runs_coop(toy_registry, tiny_engine):
    from vlprompt_methods.coop import METHOD, Config

    config = Config(n_ctx=4, epochs=3, batch_size=4)
    runs = _runs(toy_registry, tiny_engine, [1, 2, 3])
    together = METHOD.train(runs, config, tiny_engine)
    for run, batched in zip(runs, together, strict=True):
        (alone,) = METHOD.train([run], config, tiny_engine)
        torch.testing.assert_close(batched.ctx, alone.ctx, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(together[0].ctx, together[1].ctx)
