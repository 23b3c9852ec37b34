"""What a protocol is: it turns (dataset, shots, seed) into training data and eval splits.

Protocols are plugins (``register_protocols``). They never import torch: they pick samples
and class names, and the engine does the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Protocol as TypingProtocol

from benchmark.datasets.spec import REFERENCE_AUGMENTATION, Augmentation, Sample

if TYPE_CHECKING:
    from benchmark.leaderboard.layout import Layout, Scope


@dataclass(frozen=True)
class Classes:
    """The class names a classifier must score, with the dataset they come from.

    ``template`` is the dataset's hand-crafted prompt (``"a photo of a {}."``), which
    zero-shot CLIP and the methods that use a hand-crafted anchor need.
    """

    dataset: str
    names: tuple[str, ...]
    template: str


@dataclass(frozen=True)
class TrainData:
    """What one run trains on: few-shot samples (labels index ``classes.names``), and the
    augmentation that makes their training views."""

    dataset: str
    shots: int
    seed: int
    samples: tuple[Sample, ...]
    val: tuple[Sample, ...]
    classes: Classes
    augmentation: Augmentation = REFERENCE_AUGMENTATION


@dataclass(frozen=True)
class EvalSplit:
    """One evaluation: test samples scored against ``classes`` (labels index its names)."""

    split: str
    samples: tuple[Sample, ...]
    classes: Classes

    @property
    def eval_dataset(self) -> str:
        return self.classes.dataset


@dataclass(frozen=True)
class Plan:
    """A cell's training data and every split it is evaluated on."""

    train: TrainData
    evals: tuple[EvalSplit, ...]


@dataclass(frozen=True)
class Metric:
    """A result derived from the accuracies of a run (base-to-new's harmonic mean)."""

    eval_dataset: str
    split: str
    metric: str
    value: float


class Catalog(TypingProtocol):
    """Access to registered datasets, as handed to protocols by the runner."""

    def spec(self, name: str): ...  # -> DatasetSpec

    def splits(self, name: str): ...  # -> Splits

    def names(self) -> list[str]: ...


class Protocol(TypingProtocol):
    """An evaluation protocol.

    ``name``/``summary``: for listings. ``default_shots``: shot counts when the user gives
    none. ``training_datasets`` picks, from the selected datasets, those a cell trains on
    (few-shot: every non-shift dataset; cross-dataset: the source). ``plan`` builds one
    cell. ``derived`` adds metrics computed from a run's accuracies (may return nothing).

    A protocol may also have the attributes of :class:`LeaderboardLayout`; without them its
    results get the leaderboard's generic table.
    """

    name: str
    summary: str
    default_shots: tuple[int, ...]

    def training_datasets(self, selected: Sequence[str], catalog: Catalog) -> list[str]: ...

    def plan(self, dataset: str, shots: int, seed: int, catalog: Catalog) -> Plan: ...

    def derived(self, accuracy: Mapping[tuple[str, str], float]) -> list[Metric]: ...


class LeaderboardLayout(TypingProtocol):
    """The optional leaderboard attributes of a protocol.

    ``leaderboard_layouts(scope)`` gives the tables of one protocol, backbone, weights and
    shot count: :class:`benchmark.leaderboard.layout.Layout` objects built from the building
    blocks of :mod:`benchmark.leaderboard.layout` (``scope`` says which cells are present and
    how to name datasets). ``leaderboard_order``: the protocol's place on the page (smaller
    first; protocols without one come last, by name). ``leaderboard_plots``: the figures of
    :mod:`benchmark.plots` its results have (``"accuracy_vs_shots"``, ``"base_vs_new"``).
    """

    leaderboard_order: int
    leaderboard_plots: tuple[str, ...]

    def leaderboard_layouts(self, scope: Scope) -> list[Layout]: ...
