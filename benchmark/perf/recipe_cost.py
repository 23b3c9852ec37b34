"""What a recipe costs: its runs, training steps and encoded images, and, given a bench report
of its backbone, the device hours they take (an estimate).

The counts come from the recipe's planned cells (:func:`benchmark.recipes.recipe_cells`),
each run id once: a prompt-learning run trains ``epochs x steps_per_epoch(shots x classes,
batch)`` steps with its own cell's config (:func:`benchmark.prompting.trainer.steps_per_epoch`;
base-to-new trains on the base half of the classes), at the standard datasets' sizes
(:data:`benchmark.datasets.standard.EXPECTED`). The hours use the step-time model of
``python -m benchmark bench --estimate`` (:mod:`benchmark.perf.estimate`): a report of
``python -m benchmark bench --backbone B --json FILE`` gives each method's measured time per
run-step as a function of the class count. :data:`ASSUMPTIONS` lists what is and is not
counted; they are printed with every estimate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmark.datasets.standard import EXPECTED
from benchmark.perf.estimate import (
    FEATURES_ONLY,
    NO_TRAINING,
    PER_IMAGE_PROMPTS,
    STAND_INS,
    encoded_views,
    per_image_scoring_ms,
    run_steps,
    step_times,
    trained_classes,
)
from benchmark.planner import Cell
from benchmark.request import split_variant

ASSUMPTIONS = (
    "training: each run's steps (its own epochs and batch size; shots x classes training "
    "images) at the bench report's measured time per run-step of its method at its class "
    "count (the runs of a cell's seeds train together, as the runner batches them)",
    "CoCoOp's evaluation builds K prompts per test image: half a measured training step per "
    "test image",
    "feature extraction, at the report's measured rate: every test image of the recipe's "
    "datasets once, each seed's training images in one view per epoch of its own, and every "
    "training image once more in the test view (the draws of one seed's shot counts counted "
    "apart: an upper bound)",
    "not counted: the linear probe's L-BFGS fits, zero-shot scoring, scoring against cached "
    "features, writing results, downloading weights; runs other recipes already made are "
    "counted again",
)


@dataclass
class RecipeCost:
    """The counts of one recipe, and its device hours where a bench report allows."""

    runs: int = 0
    trained_runs: int = 0
    run_steps: int = 0  # training steps summed over runs
    encoded_images: int = 0  # images through the image encoder (views included)
    hours: float | None = None
    report: str | None = None  # which bench report the hours come from
    missing: str = ""  # why there are no hours
    by_method_steps: dict[str, int] = field(default_factory=dict)


def _training(cell: Cell) -> tuple[int, int, int] | None:
    """(classes trained on, steps, epochs) of a prompt-learning run; None for a method that
    takes no training steps (zero-shot CLIP, the linear probe's fit)."""
    if split_variant(cell.method)[0] in (NO_TRAINING, FEATURES_ONLY):
        return None
    k, steps = run_steps(cell.protocol, cell.dataset, cell.shots, cell.config)
    return k, steps, cell.config.epochs


def _evaluated(cell: Cell, transfer_targets: Sequence[str]) -> list[str]:
    """The datasets a run is scored on: its own, and the targets of a transfer protocol."""
    return [cell.dataset, *(d for d in transfer_targets if d != cell.dataset)]


def recipe_cost(
    cells: Sequence[Cell],
    datasets: Sequence[str],
    backbone: str,
    report: tuple[str, dict] | None = None,
) -> RecipeCost:
    """The cost of a recipe whose cells (each run id once) are ``cells``, over ``datasets``,
    on ``backbone``.

    ``report`` is (a name for it, a bench report of ``backbone``). Without one, or without a
    step time for one of the trained methods, ``hours`` is ``None`` and ``missing`` says what
    is needed.
    """
    cost = RecipeCost(runs=len(cells))
    trained_on = {cell.dataset for cell in cells}
    targets = [d for d in datasets if d not in trained_on]
    views: dict[str, int] = {}  # training views per image of each dataset (its longest run)
    draws = {(c.dataset, c.shots, trained_classes(c.protocol, c.dataset)) for c in cells}
    per_seed: dict[str, int] = {}  # training images of each dataset in one seed's draws
    for dataset, shots, k in draws:
        per_seed[dataset] = per_seed.get(dataset, 0) + shots * k
    seeds = {dataset: len({c.seed for c in cells if c.dataset == dataset}) for dataset in per_seed}
    training: list[tuple[Cell, int, int]] = []
    for cell in cells:
        trains = _training(cell)
        if trains is None:
            continue
        k, steps, epochs = trains
        cost.trained_runs += 1
        cost.run_steps += steps
        method = split_variant(cell.method)[0]
        cost.by_method_steps[method] = cost.by_method_steps.get(method, 0) + steps
        views[cell.dataset] = max(views.get(cell.dataset, 0), epochs)
        training.append((cell, k, steps))
    for dataset in datasets:
        sizes = EXPECTED[dataset]
        cost.encoded_images += encoded_views(
            sizes.train,
            sizes.test,
            per_seed.get(dataset, 0),
            seeds.get(dataset, 0),
            views.get(dataset, 0),
        )
    if report is None:
        cost.missing = f"no bench report of {backbone}"
        return cost
    name, content = report
    if content.get("backbone") != backbone:
        raise ValueError(f"{name} is a bench report of {content.get('backbone')}, not {backbone}")
    times = step_times(content)
    unmeasured = sorted(
        {split_variant(c.method)[0] for c, _, _ in training if not _timed(times, c)}
    )
    if unmeasured:
        cost.missing = f"{name} has no step time of {', '.join(unmeasured)}"
        return cost
    ms = 0.0
    for cell, k, steps in training:
        timed = _timed(times, cell)
        ms += steps * timed.ours(k)
        if split_variant(cell.method)[0] == PER_IMAGE_PROMPTS:
            for dataset in _evaluated(cell, targets):
                sizes = EXPECTED[dataset]
                ms += per_image_scoring_ms(sizes.test, timed.ours(sizes.classes))
    seconds = ms / 1000 + cost.encoded_images / content["extraction_images_per_s"]
    cost.hours = seconds / 3600
    cost.report = name
    return cost


def _timed(times: Mapping[str, Any], cell: Cell) -> Any:
    """The step times of the cell's method (or of the method timed in its stead)."""
    method = split_variant(cell.method)[0]
    return times.get(method) or times.get(STAND_INS.get(method, ""))


def rounded_hours(hours: float) -> str:
    """Hours with two significant digits (an estimate claims no more)."""
    if hours <= 0:
        return "0"
    digits = max(0, 1 - math.floor(math.log10(hours)))
    return f"{round(hours, digits):.{digits}f}"
