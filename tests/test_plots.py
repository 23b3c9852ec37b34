"""Leaderboard plots: files written, and the tables' rule that an incomplete cell (missing
seeds) draws no point and an average is drawn only where every dataset is complete."""

from __future__ import annotations

from pathlib import Path

from benchmark.leaderboard import aggregate, base_to_new_table
from benchmark.plots import plots, write_plots
from tests.test_leaderboard import frame, seeded
from tests.test_leaderboard_reference import base_to_new_rows


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
    [plot] = plots(frame(few_shot_rows()), {"dtd": "DTD", "oxford_pets": "OxfordPets"})
    assert plot.name == "few_shot_ViT-B-16_openai"
    axes = {ax.get_title(): ax for ax in plot.figure.axes if ax.get_visible()}
    assert set(axes) == {"OxfordPets", "DTD", "Average"}
    assert drawn(axes["OxfordPets"]) == {"coop": [1, 4], "kgcoop": [1, 4]}
    assert drawn(axes["DTD"]) == {"coop": [1, 4], "kgcoop": [1]}
    assert drawn(axes["Average"]) == {"coop": [1, 4], "kgcoop": [1]}
    average = {c.get_label(): list(c.lines[0].get_ydata()) for c in axes["Average"].containers}
    assert average["kgcoop"] == [71.0]


def test_write_plots(tmp_path: Path) -> None:
    df = frame(few_shot_rows() + base_to_new_rows())
    written = write_plots(df, tmp_path / "plots")
    assert [p.name for p in written] == [
        "few_shot_ViT-B-16_openai.png",
        "base_to_new_ViT-B-16_openai_16shots.png",
    ]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    [_, scatter] = plots(df)
    labels = [c.get_label() for c in scatter.figure.axes[0].collections]
    table = base_to_new_table(aggregate(df))  # the points are the table's Average rows
    expected = [f"{r[1]} (H {r[4].mean:.1f})" for r in table[1:] if r[0] == "Average"]
    assert labels == expected and len(labels) == 4
