"""The datasets of one run: registered specs, the user's selection, splits loaded once."""

from __future__ import annotations

from benchmark.datasets.fingerprint import dataset_fingerprint
from benchmark.datasets.spec import DataContext, DatasetSpec, Splits
from benchmark.errors import DataError
from benchmark.registry import Table


class DatasetCatalog:
    """Registered datasets restricted to a selection; ``splits`` reads each dataset once and
    ``fingerprint`` digests it once."""

    def __init__(self, table: Table[DatasetSpec], context: DataContext, selected: list[str]):
        self._table = table
        self._context = context
        self._selected = list(selected)
        self._splits: dict[str, Splits] = {}
        self._fingerprints: dict[str, str] = {}

    def names(self) -> list[str]:
        return list(self._selected)

    def spec(self, name: str) -> DatasetSpec:
        return self._table.get(name)

    def splits(self, name: str) -> Splits:
        if name not in self._splits:
            splits = self.spec(name).load(self._context)
            if not splits.test and not splits.train:
                raise DataError(f"dataset {name!r} has no images (empty train and test splits)")
            self._splits[name] = splits
        return self._splits[name]

    def fingerprint(self, name: str) -> str:
        """The dataset's content fingerprint
        (:func:`~benchmark.datasets.fingerprint.dataset_fingerprint`), part of run ids."""
        if name not in self._fingerprints:
            self._fingerprints[name] = dataset_fingerprint(self.spec(name), self.splits(name))
        return self._fingerprints[name]
