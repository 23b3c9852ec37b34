"""What a method is: a typed config, settings per cell, and a ``train`` that returns classifiers.

Methods are plugins (``register_methods`` with a :class:`~benchmark.registry.MethodSpec`).
The object the spec points at implements :class:`Method`, generic in its config type. The
engine's bases implement most of it: :class:`benchmark.settings.Configured` resolves a
config from a settings table, and :class:`benchmark.prompting.method.PromptMethod` is the
whole CoOp family but the paper's own parts. This module imports no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    import torch

    from benchmark.engine import Engine
    from benchmark.protocol import Classes, TrainData

GENERIC_TEMPLATE = "a photo of a {}."


@dataclass(frozen=True)
class Setting:
    """What a method's settings may depend on: one cell of the matrix, before its seed.

    ``preset`` is ``"reference"`` (the official code's settings), ``"quick"`` (the mini
    world's short runs) or a paper's settings (``"gcscoop"``); ``template`` is the dataset's
    hand-crafted prompt, with ``{}`` for the class name.
    """

    protocol: str
    dataset: str
    shots: int
    backbone: str
    preset: str
    template: str = GENERIC_TEMPLATE


class Classifier(Protocol):
    """A trained model that scores image features against any list of class names.

    ``scores`` returns logits of shape (N, len(classes.names)), or ``None`` when the
    method cannot score these classes (a linear probe on unseen classes): the protocol then
    records no result rather than a wrong one. ``diagnostics`` are extra metrics of the
    training run (for example ProGrad's share of projected steps).
    """

    diagnostics: Mapping[str, float]

    def scores(self, features: torch.Tensor, classes: Classes) -> torch.Tensor | None: ...


ConfigT = TypeVar("ConfigT")


class Method(Protocol[ConfigT]):
    """A training method whose hyperparameters are a frozen dataclass ``Config``.

    ``config(setting)`` returns the values for one cell (variants and the user's ``--set``
    are applied on top by the planner). ``training_views(config)`` names the cached training
    views (augmented epochs) ``train`` reads, so that the runner can encode them ahead; a
    method that trains on the test view only returns none. ``train`` gets one
    :class:`~benchmark.protocol.TrainData` per seed, all with the same config; it trains
    them together where it can and returns one classifier per seed, in order. ``version`` is
    part of every run's identity: bump it when a change alters results.
    """

    name: str
    version: str
    Config: type[ConfigT]

    def config(self, setting: Setting) -> ConfigT: ...

    def training_views(self, config: ConfigT) -> Sequence[int]: ...

    def train(
        self, runs: Sequence[TrainData], config: ConfigT, engine: Engine
    ) -> list[Classifier]: ...
