"""The matrix's progress for a person: cells done out of the total, time elapsed, and an ETA.

The ETA is an estimate from the groups finished so far: each remaining cell is expected to
take as long as the finished cells of its method took on average, or, for a method with none
finished yet, as long as all finished cells took on average. It is printed with each group
the runner starts, one line each, which reads the same in a terminal and in a log file; the
bars of a group's own work (encoding images, training epochs) are drawn on a terminal only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

Clock = Callable[[], float]


def duration(seconds: float) -> str:
    """``"42s"``, ``"3m05s"``, ``"2h10m"``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class MatrixProgress:
    """Counts the cells of a run's groups and estimates the time left (module docstring)."""

    def __init__(self, groups: Sequence[Sequence[Any]], clock: Clock = time.perf_counter) -> None:
        self.clock = clock
        self.start = clock()
        self.total = sum(len(group) for group in groups)
        self.done = 0
        self._left: dict[str, int] = {}
        for group in groups:
            self._left[group[0].method] = self._left.get(group[0].method, 0) + len(group)
        self._seconds: dict[str, float] = {}
        self._cells: dict[str, int] = {}
        self._started: dict[int, float] = {}

    def started(self, group: Sequence[Any]) -> None:
        self._started[id(group)] = self.clock()

    def finished(self, group: Sequence[Any]) -> None:
        """A group's cells are done (written, or failed for good)."""
        method = group[0].method
        seconds = self.clock() - self._started.pop(id(group), self.clock())
        self._seconds[method] = self._seconds.get(method, 0.0) + seconds
        self._cells[method] = self._cells.get(method, 0) + len(group)
        self._left[method] = max(0, self._left.get(method, 0) - len(group))
        self.done += len(group)

    def skipped(self, cells: int, method: str) -> None:
        """Cells left out after all (finished or held elsewhere meanwhile)."""
        self._left[method] = max(0, self._left.get(method, 0) - cells)
        self.total -= cells

    def eta(self) -> float | None:
        """Seconds left, estimated; None before any group finished."""
        cells = sum(self._cells.values())
        if not cells:
            return None
        overall = sum(self._seconds.values()) / cells
        return sum(
            left * (self._seconds[m] / self._cells[m] if self._cells.get(m) else overall)
            for m, left in self._left.items()
        )

    def line(self) -> str:
        """``"12/112 cells, 1m05s elapsed, about 2m10s left"``."""
        eta = self.eta()
        left = "time left: after the first group" if eta is None else f"about {duration(eta)} left"
        return (
            f"{self.done}/{self.total} cells, {duration(self.clock() - self.start)} elapsed, {left}"
        )
