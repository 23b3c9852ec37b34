"""The datasets of one run: registered specs, the user's selection, splits loaded once."""

from __future__ import annotations

from benchmark.datasets.spec import DataContext, DatasetSpec, Splits
from benchmark.errors import DataError
from benchmark.registry import Table


class DatasetCatalog:
    """Registered datasets restricted to a selection; ``splits`` reads each dataset once."""

    def __init__(self, table: Table[DatasetSpec], context: DataContext, selected: list[str]):
        self._table = table
        self._context = context
        self._selected = list(selected)
        self._splits: dict[str, Splits] = {}

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
