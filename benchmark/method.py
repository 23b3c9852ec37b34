"""What a method is: a config dataclass with presets, and a ``train`` that returns classifiers.

Methods are plugins (``register_methods`` with a :class:`~benchmark.registry.MethodSpec`).
The object the spec points at implements :class:`Method`. This module imports no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

    from benchmark.engine import Engine
    from benchmark.protocol import Classes, TrainData


@dataclass(frozen=True)
class Setting:
    """What a method's presets may depend on."""

    protocol: str
    dataset: str
    shots: int
    backbone: str
    preset: str  # "reference" (the papers' settings) or "quick" (the mini world's default)


class Classifier(Protocol):
    """A trained model that scores image features against any list of class names.

    ``scores`` returns logits of shape (N, len(classes.names)), or ``None`` when the
    method cannot score these classes (a linear probe on unseen classes): the protocol then
    records no result rather than a wrong one. ``diagnostics`` are extra metrics of the
    training run (for example ProGrad's share of projected steps).
    """

    diagnostics: Mapping[str, float]

    def scores(self, features: torch.Tensor, classes: Classes) -> torch.Tensor | None: ...


class Method(Protocol):
    """A training method.

    ``Config`` is a frozen dataclass of hyperparameters; ``config(setting)`` returns the
    preset values for a setting (user ``--set`` overrides are applied on top by the engine).
    ``train`` gets one :class:`~benchmark.protocol.TrainData` per seed, all with the same
    config; it trains them together where it can and returns one classifier per seed, in
    order. ``version`` is part of every run's identity: bump it when a change alters results.
    """

    name: str
    version: str
    Config: type

    def config(self, setting: Setting) -> Any: ...

    def train(self, runs: Sequence[TrainData], config: Any, engine: Engine) -> list[Classifier]: ...
