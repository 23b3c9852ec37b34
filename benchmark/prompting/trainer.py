"""The training loop shared by every prompt-learning method.

SGD with momentum and weight decay on the learned tensors only, the reference schedule
(warm-up epoch, then cosine stepped per epoch), batches drawn by a random sampler seeded per
run, and the image features of epoch ``e`` read from the cache's view ``e`` of the run's seed
(the reference: a new augmentation every epoch), or from view ``e mod V`` when a config
cycles through ``V`` views (the quick preset, where encoding the views costs more than
training on them). Runs are
batched along the leading dimension of every learned tensor (see :mod:`.rules`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from benchmark.engine import Engine
from benchmark.prompting.rules import Closure, Losses, UpdateRule
from benchmark.prompting.schedule import learning_rate
from benchmark.protocol import TrainData


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite."""


@dataclass(frozen=True)
class Optimisation:
    """The optimiser and schedule of the reference code."""

    epochs: int
    batch_size: int
    lr: float = 0.002
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_lr: float = 1e-5
    warmup: bool = True  # epoch 0 at warmup_lr (the reference); False: the cosine from epoch 0
    squared_cosine: bool = False
    distinct_views: int = 0  # V > 0: epoch e reads view e mod V; 0: view e

    @property
    def views(self) -> range:
        """The cached training views the loop reads."""
        return range(min(self.epochs, self.distinct_views or self.epochs))

    def view(self, epoch: int) -> int:
        """The cached training view read in ``epoch``."""
        return epoch % len(self.views)


@dataclass(frozen=True)
class Batch:
    """One step's data for S runs: normalised image features (S, B, D) and labels (S, B)."""

    features: torch.Tensor
    labels: torch.Tensor
    epoch: int


StepLosses = Callable[[Sequence[torch.Tensor], Batch], Losses]


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches per epoch of ``n`` samples: the last partial one is dropped when n >= batch."""
    return n // batch_size if n >= batch_size else 1


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A random sampler's batches (:func:`steps_per_epoch` of them)."""
    order = torch.randperm(n, generator=generator)
    if n < batch_size:
        return [order]
    return list(order[: steps_per_epoch(n, batch_size) * batch_size].split(batch_size))


def fit(
    runs: Sequence[TrainData],
    engine: Engine,
    params: Sequence[torch.Tensor],
    losses: StepLosses,
    rule: UpdateRule,
    opt: Optimisation,
) -> list[dict[str, float]]:
    """Train ``params`` (each of shape (S, ...)) in place; returns per-run diagnostics.

    All runs must have the same number of training samples (they do when every class has
    at least ``shots`` images); the runner groups them so.
    """
    sizes = {len(run.samples) for run in runs}
    if len(sizes) != 1:
        raise ValueError(f"runs trained together need equal training sets, got sizes {sizes}")
    n = sizes.pop()
    device = engine.device
    for p in params:
        p.requires_grad_(True)
    optimiser = torch.optim.SGD(
        list(params), lr=opt.warmup_lr, momentum=opt.momentum, weight_decay=opt.weight_decay
    )
    labels = torch.tensor([[s.label for s in run.samples] for run in runs], device=device)
    generators = [torch.Generator().manual_seed(run.seed) for run in runs]
    cache = engine.features
    for run in runs:  # one extraction pass per run for all epochs
        cache.ensure(run.samples, opt.views, run.augmentation, run.seed)
    totals: dict[str, torch.Tensor] = {}
    steps = 0
    epochs = tqdm(range(opt.epochs), desc="training", unit="epoch", leave=False, disable=None)
    for epoch in epochs:  # a bar on a terminal only (disable=None), never in a log
        lr = learning_rate(epoch, opt.lr, opt.epochs, opt.warmup_lr, opt.squared_cosine, opt.warmup)
        for group in optimiser.param_groups:
            group["lr"] = lr
        view = torch.stack(
            [cache.features(r.samples, opt.view(epoch), r.augmentation, r.seed) for r in runs]
        )
        view = F.normalize(view, dim=-1)
        orders = [_batches(n, opt.batch_size, g) for g in generators]
        for step_indices in zip(*orders, strict=True):
            index = torch.stack(step_indices).to(device)
            batch = Batch(
                features=torch.gather(view, 1, index[..., None].expand(-1, -1, view.shape[-1])),
                labels=torch.gather(labels, 1, index),
                epoch=epoch,
            )
            closure: Closure = lambda values, batch=batch: losses(values, batch)  # noqa: E731
            grads, stats = rule(params, _checked(closure))
            for p, g in zip(params, grads, strict=True):
                p.grad = g.detach()
            optimiser.step()
            for key, value in stats.items():
                totals[key] = totals.get(key, 0) + value.detach().float()
            steps += 1
    return [{k: float(v[i]) / max(steps, 1) for k, v in totals.items()} for i in range(len(runs))]


def _checked(closure: Closure) -> Closure:
    def evaluate(values: Sequence[torch.Tensor]) -> Losses:
        result = closure(values)
        for name, value in result.items():
            if not torch.isfinite(value).all():
                raise TrainingDiverged(f"loss {name!r} became {value.tolist()}")
        return result

    return evaluate
