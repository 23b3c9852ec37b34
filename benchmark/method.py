"""What a method is: a typed config, settings per cell, and a ``train`` that returns classifiers.

Methods are plugins (``register_methods`` with a :class:`~benchmark.registry.MethodSpec`).
The object the spec points at implements :class:`Method`, generic in its config type. The
engine's bases implement most of it: :class:`benchmark.settings.Configured` resolves a
config from a settings table, and :class:`benchmark.prompting.method.PromptMethod` is the
whole CoOp family but the paper's own parts. This module imports no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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

    A classifier that learned tensors may also have ``state() -> LearnedState``
    (:class:`SavedClassifier`): the runner then saves them as the run's artifact
    (:mod:`benchmark.artifacts`). One without it (zero-shot CLIP) saves nothing.
    """

    diagnostics: Mapping[str, float]

    def scores(self, features: torch.Tensor, classes: Classes) -> torch.Tensor | None: ...


class StateError(ValueError):
    """A learned state lacks a tensor or text a method needs, or holds one of another shape."""


@dataclass(frozen=True)
class LearnedState:
    """What a trained classifier learned: enough to rebuild it without training again.

    ``tensors`` are its learned tensors by name (saved as they are, dtype included);
    ``texts`` the strings it needs besides (CoOp's prompt lead, ``"a photo of a"``);
    ``contexts`` names the tensors that are context vectors in the text encoder's
    token-embedding space, shape (..., M, d), which ``python -m benchmark inspect`` reads
    as their nearest vocabulary tokens.
    """

    tensors: Mapping[str, torch.Tensor]
    texts: Mapping[str, str] = field(default_factory=dict)
    contexts: tuple[str, ...] = ()

    def tensor(
        self, name: str, *shape: int | None, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """The tensor ``name``, checked against ``shape`` (``None``: any size there; no
        shape: any shape) and ``dtype``; :class:`StateError` when it is missing or of
        another shape or dtype."""
        if name not in self.tensors:
            raise StateError(f"no tensor {name!r} (tensors: {', '.join(sorted(self.tensors))})")
        value = self.tensors[name]
        if dtype is not None and value.dtype != dtype:
            raise StateError(f"tensor {name!r} is {value.dtype}, expected {dtype}")
        fits = value.dim() == len(shape) and all(
            want is None or have == want for have, want in zip(value.shape, shape, strict=True)
        )
        if shape and not fits:
            wanted = ", ".join("*" if s is None else str(s) for s in shape)
            raise StateError(f"tensor {name!r} has shape {tuple(value.shape)}, expected ({wanted})")
        return value

    def text(self, name: str) -> str:
        """The text ``name``; :class:`StateError` when it is missing."""
        if name not in self.texts:
            raise StateError(f"no text {name!r}")
        return self.texts[name]


class SavedClassifier(Classifier, Protocol):
    """A classifier whose learned tensors are saved with its run."""

    def state(self) -> LearnedState: ...


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

    A method whose classifiers have a ``state()`` may also rebuild them from it
    (:class:`Rebuildable`), which ``python -m benchmark eval`` needs.
    """

    name: str
    version: str
    Config: type[ConfigT]

    def config(self, setting: Setting) -> ConfigT: ...

    def training_views(self, config: ConfigT) -> Sequence[int]: ...

    def train(
        self, runs: Sequence[TrainData], config: ConfigT, engine: Engine
    ) -> list[Classifier]: ...


class Rebuildable(Protocol):
    """A method that rebuilds its classifiers from their saved state.

    ``classifier_from(state, trained_on, engine)`` returns the classifier whose ``state()``
    was ``state``, trained on the classes ``trained_on``, on ``engine``'s backbone (the one
    it was trained with: the caller checks). It raises :class:`StateError` when ``state``
    lacks what it needs or holds tensors of other shapes.
    """

    def classifier_from(
        self, state: LearnedState, trained_on: Classes, engine: Engine
    ) -> Classifier: ...
