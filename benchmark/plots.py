"""Leaderboard plots (matplotlib, Agg backend: no display needed), pure functions of the
result table like the tables of :mod:`benchmark.leaderboard`.

* Few-shot: accuracy against shots, one panel per dataset and one for the average over the
  datasets (as ProGrad's figure 4), a line per method, error bars the std over seeds; one
  figure per backbone and weights.
* Base-to-new: new against base accuracy, a point per method (its averages over the
  datasets) with the curves of equal H; one figure per backbone, weights and shot count.

Points follow the tables' rule: an incomplete cell (missing seeds) is not drawn, and an
average is drawn only where every dataset's cell is complete.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from benchmark.leaderboard import CELL_KEYS, aggregate, harmonic_mean

__all__ = ["Plot", "plots", "write_plots"]

DPI = 110


class Plot(NamedTuple):
    """A figure and the file stem it is saved under."""

    name: str
    title: str
    figure: Figure

    def png(self) -> bytes:
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=DPI)
        return buffer.getvalue()


def _stem(*parts: object) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "-", "_".join(str(p) for p in parts)).strip("-")


def _complete(cells: pd.DataFrame) -> pd.DataFrame:
    return cells[cells["mean"].notna()]


def _few_shot(cells: pd.DataFrame, backbone: str, pretrained: str, titles) -> Plot:
    datasets = [d for d in titles if d in set(cells["dataset"])]
    datasets += sorted(set(cells["dataset"]) - set(datasets))
    methods = sorted(cells["method"].unique())
    panels = [*datasets, "Average"]
    columns = min(4, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(3.4 * columns, 2.8 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    means = cells.pivot_table(index=["method", "shots"], columns="dataset", values="mean")
    means = means.reindex(columns=datasets)
    for ax, panel in zip(axes, panels, strict=False):
        for i, method in enumerate(methods):
            color = f"C{i % 10}"
            if panel == "Average":
                if method not in means.index.get_level_values("method"):
                    continue
                of_method = means.loc[method].dropna()  # shots where every dataset is complete
                x, y, err = of_method.index, of_method.mean(axis=1), None
            else:
                points = _complete(cells[(cells["method"] == method) & (cells["dataset"] == panel)])
                points = points.sort_values("shots")
                x, y, err = points["shots"], points["mean"], points["std"]
            if len(x):
                ax.errorbar(
                    x, y, yerr=err, marker="o", ms=3, lw=1.2, capsize=2, color=color, label=method
                )
        ax.set_title(titles.get(panel, panel), fontsize=10)
        ax.set_xscale("log", base=2)
        shots = sorted(cells["shots"].unique())
        ax.set_xticks(shots, [str(s) for s in shots])
        ax.set_xlabel("shots per class", fontsize=8)
        ax.set_ylabel("accuracy (%)", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1 : len(panels)]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6))
    title = f"Few-shot accuracy ({backbone}, {pretrained})"
    figure.suptitle(title)
    return Plot(_stem("few_shot", backbone, pretrained), title, figure)


def _base_to_new(cells: pd.DataFrame, backbone: str, pretrained: str, shots: int) -> Plot:
    cells = cells[cells["eval_dataset"] == cells["dataset"]]
    figure = Figure(figsize=(5.6, 4.6), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    mean = {
        (m, d, s): v
        for m, d, s, v in zip(
            cells["method"], cells["dataset"], cells["split"], cells["mean"], strict=True
        )
    }
    datasets = sorted(cells["dataset"].unique())
    points = {}
    for method in sorted(cells["method"].unique()):
        base = [mean.get((method, d, "base"), math.nan) for d in datasets]
        new = [mean.get((method, d, "new"), math.nan) for d in datasets]
        if any(math.isnan(v) for v in base + new):
            continue  # an empty average: some dataset's cell is incomplete or absent
        points[method] = (sum(base) / len(datasets), sum(new) / len(datasets))
    low = min([v for p in points.values() for v in p], default=0.0)
    lo = max(0.0, math.floor(low / 10) * 10 - 10)
    grid = [lo + (100 - lo) * i / 200 for i in range(201)]
    for h in range(10, 100, 10):
        if h <= lo:
            continue
        xs, ys = [], []
        for b in grid:
            if 2 * b - h > 0 and b >= h / 2:
                n = h * b / (2 * b - h)
                if lo <= n <= 100:
                    xs.append(b)
                    ys.append(n)
        ax.plot(xs, ys, color="0.8", lw=0.8, ls="--", zorder=0)
        if xs:
            ax.annotate(f"H={h}", (xs[-1], ys[-1]), fontsize=7, color="0.5")
    for i, (method, (base, new)) in enumerate(points.items()):
        label = f"{method} (H {harmonic_mean(base, new):.1f})"
        ax.scatter([base], [new], color=f"C{i % 10}", s=40, zorder=3, label=label)
    if points:
        ax.legend(loc="lower left", fontsize=8)
    ax.set_xlim(lo, 100)
    ax.set_ylim(lo, 100)
    ax.set_xlabel("base accuracy (%), average over datasets")
    ax.set_ylabel("new accuracy (%), average over datasets")
    ax.grid(alpha=0.3)
    title = f"Base vs new ({backbone}, {pretrained}, {shots} shots, {len(datasets)} datasets)"
    ax.set_title(title, fontsize=10)
    return Plot(_stem("base_to_new", backbone, pretrained, f"{shots}shots"), title, figure)


def plots(df: pd.DataFrame, titles: Mapping[str, str] | None = None) -> list[Plot]:
    """The figures of a result table: few-shot curves per backbone and weights, base against
    new per backbone, weights and shot count. Empty when neither protocol has results."""
    titles = dict(titles or {})
    cells = aggregate(df[df["protocol"].isin(["few_shot", "base_to_new"])], metric="accuracy")
    if cells.empty:
        return []
    cells = cells.astype({c: object for c in CELL_KEYS if c != "shots"})
    found: list[Plot] = []
    few = cells[
        (cells["protocol"] == "few_shot")
        & (cells["split"] == "all")
        & (cells["eval_dataset"] == cells["dataset"])
    ]
    for (backbone, pretrained), group in few.groupby(["backbone", "pretrained"], dropna=False):
        found.append(_few_shot(group, backbone, pretrained, titles))
    b2n = cells[cells["protocol"] == "base_to_new"]
    keys = ["backbone", "pretrained", "shots"]
    for (backbone, pretrained, shots), group in b2n.groupby(keys, dropna=False):
        found.append(_base_to_new(group, backbone, pretrained, int(shots)))
    return found


def write_plots(
    df: pd.DataFrame, folder: Path, titles: Mapping[str, str] | None = None
) -> list[Path]:
    """Save :func:`plots` as ``<folder>/<name>.png``; returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for plot in plots(df, titles):
        path = folder / f"{plot.name}.png"
        path.write_bytes(plot.png())
        written.append(path)
    return written
