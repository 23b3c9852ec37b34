"""Leaderboard figures (matplotlib, Agg backend: no display needed), pure functions of the
result table like the tables of :mod:`benchmark.leaderboard`.

A protocol names the figures its results have in its optional ``leaderboard_plots``
(:class:`benchmark.protocol.LeaderboardLayout`); a name this module does not know is
reported (a warning) and skipped. The kinds (:data:`KINDS`):

* ``accuracy_vs_shots``: accuracy against shots, one panel per dataset (evaluated on its own
  test split) and one for the average over the datasets (as ProGrad's figure 4), a line per
  method, error bars the std over seeds; one figure per backbone and weights.
* ``base_vs_new``: new against base accuracy, a point per method (its averages over the
  datasets), labelled with its average H in the leaderboard's convention, with dashed curves
  of equal H; zoomed to the points, labels moved apart so that none hides another; one
  figure per backbone, weights and shot count.

Points follow the tables' rules and their code (:func:`benchmark.leaderboard.layout.evaluate`):
an incomplete cell (missing seeds) is not drawn, and an average is drawn only where every
dataset's cell is complete.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from benchmark.leaderboard.board import protocol_order, registered_protocols
from benchmark.leaderboard.cells import Measurements, aggregate, measurements_by_protocol
from benchmark.leaderboard.layout import (
    H_OF_MEANS,
    MEAN_OF_H,
    Key,
    Mean,
    Spec,
    average_h_spec,
)

__all__ = ["KINDS", "Plot", "plots", "write_plots"]

DPI = 110


class Plot(NamedTuple):
    """A figure, the file stem it is saved under, and the tables it belongs with (``shots``
    None: every shot count of the protocol, backbone and weights)."""

    name: str
    title: str
    figure: Figure
    protocol: str
    backbone: str
    pretrained: str
    shots: int | None

    def png(self) -> bytes:
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=DPI)
        return buffer.getvalue()


class Style(NamedTuple):
    """How figures name things: dataset and method display names, the average H, and the
    methods of the result table, whose order gives each method its colour in every figure."""

    titles: Mapping[str, str]
    method_titles: Mapping[str, str]
    average_h: str
    methods: tuple[str, ...]

    def method(self, name: str) -> str:
        return self.method_titles.get(name, name)

    def color(self, method: str) -> str:
        return f"C{self.methods.index(method) % 10}"


def _stem(*parts: object) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "-", "_".join(str(p) for p in parts)).strip("-")


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def accuracy_vs_shots(tables: list[Measurements], style: Style) -> list[Plot]:
    """One figure per backbone and weights: a panel per dataset and one for the average."""
    by_backbone: dict[tuple[str, str], list[Measurements]] = {}
    for data in sorted(tables, key=lambda d: d.shots):
        by_backbone.setdefault((data.backbone, data.pretrained), []).append(data)
    return [_shots_figure(group, style) for group in by_backbone.values()]


def _shots_figure(group: list[Measurements], style: Style) -> Plot:
    """The panels of one backbone and weights; ``group`` is its tables by shot count."""
    scopes = [data.scope(style.titles, style.average_h) for data in group]
    datasets = scopes[0].order(d for scope in scopes for d in scope.datasets("all"))
    keys = tuple(Key(d, d, "all") for d in datasets)
    methods = sorted({m for data in group for m in data.methods(keys)}, key=style.method)
    panels: list[tuple[str, Spec]] = [(style.titles.get(k.dataset, k.dataset), k) for k in keys]
    panels.append(("Average", Mean(keys)))
    columns = min(4, len(panels))
    figure = _new_figure(3.4 * columns, 2.8 * math.ceil(len(panels) / columns))
    axes = figure.subplots(math.ceil(len(panels) / columns), columns, squeeze=False).ravel()
    shots = [data.shots for data in group]
    for ax, (title, spec) in zip(axes, panels, strict=False):
        for method in methods:
            _shots_line(ax, group, method, spec, style)
        ax.set_title(title, fontsize=10)
        ax.set_xscale("log", base=2)
        ax.set_xticks(shots, [str(s) for s in shots])
        ax.set_xlabel("shots per class", fontsize=8)
        ax.set_ylabel("accuracy (%)", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    legend: dict[str, Any] = {}
    for ax in axes[: len(panels)]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    figure.legend(
        list(legend.values()), list(legend), loc="outside lower center", ncols=min(len(legend), 6)
    )
    data = group[0]
    title = f"Accuracy against shots · {data.protocol} ({data.backbone}, {data.pretrained})"
    figure.suptitle(title)
    name = _stem(data.protocol, data.backbone, data.pretrained)
    return Plot(name, title, figure, data.protocol, data.backbone, data.pretrained, None)


def _shots_line(ax: Any, group: list[Measurements], method: str, spec: Spec, style: Style) -> None:
    """A method's values of ``spec`` against shots, error bars its std (cells only)."""
    points = [(data.shots, data.value(spec, method), data) for data in group]
    points = [(shots, value, data) for shots, value, data in points if value is not None]
    if not points:
        return
    errors = [
        (data.std(method, spec) if isinstance(spec, Key) else None) or 0.0 for _, _, data in points
    ]
    ax.errorbar(
        [shots for shots, _, _ in points],
        [value for _, value, _ in points],
        yerr=errors if any(errors) else None,
        marker="o",
        ms=3,
        lw=1.2,
        capsize=2,
        color=style.color(method),
        label=style.method(method),
    )


_H_IN_LABELS = {MEAN_OF_H: "mean of per-dataset H", H_OF_MEANS: "H of the averaged base and new"}


def base_vs_new(tables: list[Measurements], style: Style) -> list[Plot]:
    """One figure per backbone, weights and shot count: a point per method."""
    found = []
    for data in tables:
        scope = data.scope(style.titles, style.average_h)
        datasets = scope.datasets("base")
        bases = tuple(Key(d, d, "base") for d in datasets)
        news = tuple(Key(d, d, "new") for d in datasets)
        specs = (Mean(bases), Mean(news), average_h_spec(bases, news, style.average_h))
        points: dict[str, tuple[float, float, float]] = {}
        for method in sorted(data.methods(set(bases)), key=style.method):
            values = [data.value(spec, method) for spec in specs]
            if None not in values:
                points[method] = tuple(values)  # base, new, average H
        figure = _new_figure(6.4, 5.2)
        ax = figure.subplots()
        _zoom(ax, [(b, n) for b, n, _ in points.values()])
        _equal_h_curves(ax)
        for method, (base, new, _) in points.items():
            ax.scatter([base], [new], color=style.color(method), s=36, zorder=3)
        labels = [f"{style.method(m)}  H {h:.1f}" for m, (_, _, h) in points.items()]
        _label_points(ax, [(b, n) for b, n, _ in points.values()], labels)
        ax.set_xlabel("base accuracy (%), average over datasets")
        ax.set_ylabel("new accuracy (%), average over datasets")
        ax.grid(alpha=0.3)
        convention = _H_IN_LABELS[style.average_h]
        title = (
            f"Base vs new · {data.protocol} ({data.backbone}, {data.pretrained}) · "
            f"{data.shots} shot{'' if data.shots == 1 else 's'} · "
            f"{len(datasets)} dataset{'' if len(datasets) == 1 else 's'}"
        )
        subtitle = f"labels: average H ({convention}); dashed: equal H of the axes' base and new"
        ax.set_title(f"{title}\n{subtitle}", fontsize=9)
        name = _stem(data.protocol, data.backbone, data.pretrained, f"{data.shots}shots")
        found.append(
            Plot(name, title, figure, data.protocol, data.backbone, data.pretrained, data.shots)
        )
    return found


def _zoom(ax: Any, points: list[tuple[float, float]]) -> None:
    """Axis limits around the points: their range, padded, within 0-100."""
    if not points:
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 100)
        return
    for axis, values in zip((ax.set_xlim, ax.set_ylim), zip(*points, strict=True), strict=True):
        low, high = min(values), max(values)
        pad = max(2.0, 0.2 * (high - low))
        axis(max(0.0, low - pad), min(100.0, high + pad))


def _equal_h_curves(ax: Any) -> None:
    """Dashed curves of equal H (2BN/(B+N)) across the view, about five of them."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    h_low, h_high = 2 * x0 * y0 / max(x0 + y0, 1e-9), 2 * x1 * y1 / (x1 + y1)
    step = next((s for s in (1, 2, 5, 10, 20) if (h_high - h_low) / s <= 6), 25)
    h = math.ceil(h_low / step) * step
    while h <= h_high:
        xs = [x0 + (x1 - x0) * i / 200 for i in range(201)]
        curve = [(b, h * b / (2 * b - h)) for b in xs if 2 * b > h]
        curve = [(b, n) for b, n in curve if y0 <= n <= y1]
        if len(curve) > 1 and h > 0:
            ax.plot(*zip(*curve, strict=True), color="0.75", lw=0.8, ls="--", zorder=0)
            ax.annotate(f"H={h:g}", curve[-1], fontsize=7, color="0.5", ha="right", va="bottom")
        h += step
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)


LABEL_OFFSETS = tuple(
    (side * 7, step * sign * 8)
    for step in range(13)
    for sign in ((1,) if step == 0 else (1, -1))
    for side in (1, -1)
)
"""Where a point's label may go, in points from the point, nearest first: beside it (right,
then left), then ever further above or below, with a thin line to the point."""


def _label_points(ax: Any, points: list[tuple[float, float]], labels: list[str]) -> None:
    """Label each point at the first place of :data:`LABEL_OFFSETS` where the label stays
    inside the axes and overlaps no other label and no point."""
    figure = ax.figure
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    markers = [
        Bbox.from_bounds(x - 5, y - 5, 10, 10)
        for x, y in (ax.transData.transform(point) for point in points)
    ]
    taken: list[Bbox] = []
    for point, label in zip(points, labels, strict=True):
        text = ax.annotate(
            label,
            point,
            xytext=LABEL_OFFSETS[0],
            textcoords="offset points",
            va="center",
            fontsize=8,
            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5", "shrinkA": 1, "shrinkB": 4},
        )
        for dx, dy in LABEL_OFFSETS:
            text.set_horizontalalignment("left" if dx > 0 else "right")
            text.xyann = (dx, dy)
            text.update_positions(renderer)
            box = Text.get_window_extent(text, renderer)  # the text alone, not its line
            free = not any(box.overlaps(other) for other in (*taken, *markers))
            if free and inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1):
                break
        taken.append(Text.get_window_extent(text, renderer))


KINDS: dict[str, Callable[[list[Measurements], Style], list[Plot]]] = {
    "accuracy_vs_shots": accuracy_vs_shots,
    "base_vs_new": base_vs_new,
}
"""The figures a protocol can name in ``leaderboard_plots``."""


def plots(
    df: pd.DataFrame,
    titles: Mapping[str, str] | None = None,
    *,
    method_titles: Mapping[str, str] | None = None,
    protocols: Mapping[str, Any] | None = None,
    average_h: str = MEAN_OF_H,
) -> list[Plot]:
    """The figures of a result table's protocols (each protocol's ``leaderboard_plots``;
    ``protocols`` default: the registered ones), in page order. Empty when none has any."""
    protocols = registered_protocols() if protocols is None else protocols
    method_titles = dict(method_titles or {})
    methods = sorted(set(df["method"].dropna()), key=lambda m: method_titles.get(m, m))
    style = Style(dict(titles or {}), method_titles, average_h, tuple(methods))
    wanted = {
        name: tuple(getattr(protocols.get(name), "leaderboard_plots", ()))
        for name in set(df["protocol"].dropna())
    }
    rows = df[df["protocol"].isin([name for name, kinds in wanted.items() if kinds])]
    cells = aggregate(rows, metric="accuracy")
    if cells.empty:
        return []
    by_protocol = measurements_by_protocol(cells)
    found: list[Plot] = []
    for name in protocol_order(by_protocol, protocols):
        for kind in wanted[name]:
            if kind not in KINDS:
                warnings.warn(
                    f"protocol {name!r} names an unknown plot {kind!r}; known: {', '.join(KINDS)}",
                    stacklevel=2,
                )
                continue
            found += KINDS[kind](by_protocol[name], style)
    return found


def write_plots(figures: Iterable[Plot], folder: Path) -> list[Path]:
    """Save figures as ``<folder>/<name>.png``; returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for plot in figures:
        path = folder / f"{plot.name}.png"
        path.write_bytes(plot.png())
        written.append(path)
    return written
