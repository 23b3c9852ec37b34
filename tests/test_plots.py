"""Leaderboard plots: files written, the tables' rule that an incomplete cell (missing seeds)
draws no point and an average is drawn only where every dataset is complete, and the
base-vs-new scatter zoomed to its points with labels that do not overlap."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from matplotlib.text import Text

from benchmark.plots import plots, write_plots
from tests.test_leaderboard import builtin_protocols, by_cell, frame, seeded, table_of
from tests.test_leaderboard_reference import base_to_new_rows

METHOD_TITLES = {"coop": "CoOp", "kgcoop": "KgCoOp"}


def few_shot_rows() -> list[dict]:
    rows = []
    for dataset in ("oxford_pets", "dtd"):
        for shots in (1, 4):
            rows += seeded((60.0, 61.0, 62.0), method="coop", dataset=dataset, shots=shots)
            seeds = (1, 2) if (dataset, shots) == ("dtd", 4) else (1, 2, 3)
            values = (70.0, 71.0, 72.0)[: len(seeds)]
            rows += seeded(values, seeds=seeds, method="kgcoop", dataset=dataset, shots=shots)
    return rows


def drawn(ax) -> dict[str, list[float]]:
    """label -> x values of each errorbar line of an axes."""
    return {c.get_label(): list(c.lines[0].get_xdata()) for c in ax.containers}


def test_few_shot_curves_skip_incomplete_cells() -> None:
    [plot] = plots(
        frame(few_shot_rows()),
        {"dtd": "DTD", "oxford_pets": "OxfordPets"},
        method_titles=METHOD_TITLES,
        protocols=builtin_protocols(),
    )
    assert plot.name == "few_shot_ViT-B-16_openai" and plot.shots is None
    axes = {ax.get_title(): ax for ax in plot.figure.axes if ax.get_visible()}
    assert set(axes) == {"OxfordPets", "DTD", "Average"}
    assert drawn(axes["OxfordPets"]) == {"CoOp": [1, 4], "KgCoOp": [1, 4]}
    assert drawn(axes["DTD"]) == {"CoOp": [1, 4], "KgCoOp": [1]}
    assert drawn(axes["Average"]) == {"CoOp": [1, 4], "KgCoOp": [1]}
    average = {c.get_label(): list(c.lines[0].get_ydata()) for c in axes["Average"].containers}
    assert average["KgCoOp"] == [71.0]


def test_write_plots(tmp_path: Path) -> None:
    df = frame(few_shot_rows() + base_to_new_rows())
    figures = plots(df, protocols=builtin_protocols())
    written = write_plots(figures, tmp_path / "plots")
    assert [p.name for p in written] == [
        "few_shot_ViT-B-16_openai.png",
        "base_to_new_ViT-B-16_openai_16shots.png",
    ]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def scatter_labels(plot) -> dict[str, object]:
    ax = plot.figure.axes[0]
    return {t.get_text(): t for t in ax.texts if not t.get_text().startswith("H=")}


@pytest.mark.parametrize("average_h", ["mean-of-h", "of-means"])
def test_scatter_points_are_the_tables_averages(average_h: str) -> None:
    df = frame(base_to_new_rows())
    [plot] = plots(df, protocols=builtin_protocols(), average_h=average_h)
    assert plot.shots == 16
    ax = plot.figure.axes[0]
    table = table_of(df, "base_to_new", average_h=average_h)
    cells = by_cell(table)
    h_column = table.columns[2].name
    expected = {
        f"{r.label}  H {cells[r.label, h_column].mean:.1f}": (
            cells[r.label, "Average Base"].mean,
            cells[r.label, "Average New"].mean,
        )
        for r in table.rows
    }
    labels = scatter_labels(plot)
    assert set(labels) == set(expected) and len(labels) == 4
    for text, point in expected.items():
        assert labels[text].xy == pytest.approx(point)
    convention = "mean of per-dataset H" if average_h == "mean-of-h" else "H of the averaged"
    assert convention in ax.get_title()


def test_scatter_zoomed_to_the_points_and_labels_apart() -> None:
    """Eight methods within a point of each other (two at the same place): the view spans
    the points, not 0-100, and no two labels (their text, not the lines to their points)
    overlap."""
    rows = []
    for i, method in enumerate(("m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7")):
        base, new = 70.0 + 0.1 * (i % 4), 60.0 + 0.15 * (i // 2)
        for split, value in (("base", base), ("new", new)):
            rows += seeded((value,) * 3, method=method, protocol="base_to_new", split=split)
    [plot] = plots(frame(rows), protocols=builtin_protocols())
    ax = plot.figure.axes[0]
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert 65 < x0 < 70.0 and 70.3 < x1 < 75 and 55 < y0 < 60.0 and 60.45 < y1 < 65
    plot.figure.canvas.draw()
    renderer = plot.figure.canvas.get_renderer()
    boxes = [Text.get_window_extent(t, renderer) for t in scatter_labels(plot).values()]
    assert len(boxes) == 8
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b)
    points = [ax.transData.transform(p) for c in ax.collections for p in c.get_offsets()]
    assert len(points) == 8
    for box, (x, y) in itertools.product(boxes, points):
        assert not box.contains(x, y)  # no label hides a point
    frame_box = ax.get_window_extent(renderer)
    assert all(frame_box.y0 - 1 <= box.y0 and box.y1 <= frame_box.y1 + 1 for box in boxes)
