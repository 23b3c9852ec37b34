"""Leaderboards: pure functions of the result table, in the protocols' layouts.

Pipeline (each step's module in brackets)::

    cells = aggregate(df)                      # mean ± population std over seeds  [cells]
    for data in measurements(cells):           # the cells of one table            [cells]
        scope = data.scope(titles, average_h)  # what is present, how to name it   [layout]
        for layout in protocol.leaderboard_layouts(scope):  # what a table shows   [layout]
            table = fill(layout, data, method_titles)   # ranked rows              [table]
            table = compare(layout, data, published)    # with published numbers   [comparison]
            text = render(table, "github")     # github | latex | csv, best marked [text]
    board = build_board(df, ...)               # all of the above, the page notes  [board]
    text = leaderboard(df, ...)                # the board as text                 [board]
    text = leaderboard(df, reference=load(), average_h="of-means", method_titles=...)
    board = recipe_board(select_runs(df, cells), recipe, cells, load(), protocols=...)
                                               # a paper's table from its recipe [recipe]

The HTML page is :mod:`benchmark.webpage`, the figures :mod:`benchmark.plots`.

The building blocks of layouts (:mod:`benchmark.leaderboard.layout`) import nothing heavy, so
that protocol plugins can use them; the rest (pandas, tabulate) is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from benchmark.leaderboard import layout as _layout
from benchmark.leaderboard.layout import *  # noqa: F403 (the building blocks, re-exported)

_LAZY = {
    "CELL_KEYS": "cells",
    "Measured": "cells",
    "Measurements": "cells",
    "MixedConfigurationsWarning": "cells",
    "aggregate": "cells",
    "measurements": "cells",
    "Stat": "table",
    "Table": "table",
    "TableRow": "table",
    "best_cells": "table",
    "fill": "table",
    "NotReproduced": "table",
    "CellComparison": "comparison",
    "Published": "comparison",
    "compare": "comparison",
    "compare_cell": "comparison",
    "compare_cells": "comparison",
    "published_at": "comparison",
    "published_for": "comparison",
    "published_key": "comparison",
    "FORMATS": "text",
    "format_cell": "text",
    "render": "text",
    "render_board": "text",
    "Board": "board",
    "Section": "board",
    "build_board": "board",
    "leaderboard": "board",
    "recipe_board": "recipe",
    "select_runs": "recipe",
}

__all__ = [*_layout.__all__, *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
