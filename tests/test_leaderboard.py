"""Leaderboard: aggregation rules (ddof 0, complete seeds only, H of averages) and golden
renderings of every protocol's table in github, latex and csv.

Regenerate the golden files (after checking the new output by eye) with
``UPDATE_GOLDEN=1 pytest tests/test_leaderboard.py``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from benchmark.leaderboard import (
    Stat,
    aggregate,
    base_to_new_table,
    cross_dataset_table,
    domain_generalization_table,
    few_shot_table,
    harmonic_mean,
    leaderboard,
    render,
)
from benchmark.results import COLUMNS

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
SEEDS = (1, 2, 3)
TITLES = {
    "imagenet": "ImageNet",
    "caltech101": "Caltech101",
    "oxford_pets": "OxfordPets",
    "imagenetv2": "ImageNet-V2",
    "imagenet_sketch": "ImageNet-Sketch",
}


def row(**fields: Any) -> dict[str, Any]:
    """One result row with every schema column (dummy values where not given)."""
    base: dict[str, Any] = {
        "run_id": f"run-{fields.get('method', 'coop')}-{fields.get('seed', 1)}",
        "method": "coop",
        "protocol": "few_shot",
        "dataset": "imagenet",
        "eval_dataset": fields.get("dataset", "imagenet"),
        "split": "all",
        "shots": 16,
        "seed": 1,
        "backbone": "ViT-B-16",
        "pretrained": "openai",
        "metric": "accuracy",
        "value": 50.0,
        "n_eval": 100,
        "config": "{}",
        "train_seconds": 1.0,
        "eval_seconds": 0.5,
        "suite_version": "0.1",
        "plugin": "vlprompt-bench",
        "plugin_version": "0.1",
        "git_commit": "deadbeef",
        "device": "cpu",
        "timestamp": pd.Timestamp("2026-01-01", tz="UTC"),
        "status": "ok",
        "error": "",
        "artifact": "",
        "schema_version": 1,
    }
    base.update(fields)
    return base


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    assert set(COLUMNS) <= set(df.columns)
    return df


def seeded(values: tuple[float, ...], seeds=SEEDS, **fields: Any) -> list[dict[str, Any]]:
    """One row per seed with the given values."""
    return [row(seed=s, value=v, **fields) for s, v in zip(seeds, values, strict=True)]


# -- aggregation ---------------------------------------------------------------------------


def test_mean_and_population_std() -> None:
    cells = aggregate(frame(seeded((70.0, 71.0, 75.0))))
    assert len(cells) == 1
    cell = cells.iloc[0]
    assert cell["mean"] == pytest.approx(72.0)
    assert cell["std"] == pytest.approx(np.std([70.0, 71.0, 75.0], ddof=0))
    assert cell["std"] == pytest.approx(math.sqrt(14 / 3))
    assert bool(cell["complete"]) and cell["n_seeds"] == 3 and cell["n_expected"] == 3


def test_failed_rows_are_ignored_but_their_seed_is_expected() -> None:
    rows = seeded((70.0, 72.0), seeds=(1, 2))
    rows.append(
        row(seed=3, status="failed", metric="error", value=math.nan, split="", error="boom")
    )
    cells = aggregate(frame(rows), metric="accuracy")
    assert len(cells) == 1 and not cells.iloc[0]["complete"]
    assert math.isnan(cells.iloc[0]["mean"])
    # a failed row with a value is ignored, not averaged
    rows = seeded((70.0, 72.0, 74.0))
    rows.append(row(seed=1, value=0.0, status="failed", run_id="other"))
    cell = aggregate(frame(rows)).iloc[0]
    assert cell["mean"] == pytest.approx(72.0)


def test_missing_seed_gives_empty_cell_never_partial_mean() -> None:
    rows = seeded((60.0, 61.0, 62.0), method="coop")
    rows += seeded((80.0, 81.0), seeds=(1, 2), method="kgcoop")
    df = frame(rows)
    cells = aggregate(df).set_index("method")
    assert cells.loc["coop", "complete"] and not cells.loc["kgcoop", "complete"]
    assert math.isnan(cells.loc["kgcoop", "mean"])
    table = few_shot_table(aggregate(df))
    assert table[0] == ["Method", "imagenet", "Average"]
    assert table[1] == ["coop", Stat(61.0, pytest.approx(np.std([60, 61, 62]))), Stat(61.0)]
    assert table[2] == ["kgcoop", None, None]
    assert "| kgcoop   |" in render(table)


def test_explicit_seed_set() -> None:
    rows = seeded((60.0, 61.0, 62.0, 99.0), seeds=(1, 2, 3, 4))
    cell = aggregate(frame(rows), seeds=SEEDS).iloc[0]
    assert cell["mean"] == pytest.approx(61.0)  # seed 4 not expected: ignored
    cell = aggregate(frame(rows[:2]), seeds=SEEDS).iloc[0]
    assert not cell["complete"] and math.isnan(cell["mean"])


def test_duplicate_seed_keeps_newest() -> None:
    rows = seeded((60.0, 61.0, 62.0))
    rows.append(
        row(seed=1, value=90.0, run_id="rerun", timestamp=pd.Timestamp("2026-02-01", tz="UTC"))
    )
    cell = aggregate(frame(rows)).iloc[0]
    assert cell["mean"] == pytest.approx(71.0) and cell["n_seeds"] == 3


def test_few_shot_average_empty_when_a_dataset_is_missing() -> None:
    rows = []
    for dataset, value in (("imagenet", 60.0), ("caltech101", 90.0)):
        rows += seeded((value,) * 3, method="coop", dataset=dataset)
    rows += seeded((65.0,) * 3, method="kgcoop", dataset="imagenet")
    table = few_shot_table(aggregate(frame(rows)), titles=TITLES)
    assert table[0] == ["Method", "ImageNet", "Caltech101", "Average"]
    assert table[1] == ["coop", Stat(60.0, 0.0), Stat(90.0, 0.0), Stat(75.0)]
    assert table[2] == ["kgcoop", Stat(65.0, 0.0), None, None]


def base_to_new_rows() -> list[dict[str, Any]]:
    fields = {"protocol": "base_to_new"}
    rows = []
    # dataset A: base 80, new 60; dataset B: base 90, new 20 (B's H is low)
    for dataset, base, new in (("imagenet", 80.0, 60.0), ("caltech101", 90.0, 20.0)):
        for split, v in (("base", base), ("new", new)):
            rows += seeded((v - 1, v, v + 1), method="coop", dataset=dataset, split=split, **fields)
        # the runner's per-run H rows must not be used
        rows += seeded((0.0,) * 3, method="coop", dataset=dataset, split="hm", **fields)
    # linear_probe: base present, new missing (it cannot score unseen classes)
    rows += seeded(
        (85.0, 86.0, 87.0), method="linear_probe", dataset="imagenet", split="base", **fields
    )
    return rows


def test_base_to_new_h_of_averages() -> None:
    table = base_to_new_table(aggregate(frame(base_to_new_rows())), titles=TITLES)
    assert table[0] == ["Dataset", "Method", "Base", "New", "H"]
    by_key = {(r[0], r[1]): r[2:] for r in table[1:]}
    base, new, h = by_key["Average", "coop"]
    assert base == Stat(85.0) and new == Stat(40.0)
    assert h.mean == pytest.approx(2 * 85 * 40 / 125)
    per_dataset_h = (harmonic_mean(80, 60) + harmonic_mean(90, 20)) / 2
    assert h.mean != pytest.approx(per_dataset_h)
    base, new, h = by_key["ImageNet", "coop"]
    assert base.mean == pytest.approx(80.0) and base.std == pytest.approx(math.sqrt(2 / 3))
    assert h == Stat(pytest.approx(harmonic_mean(80.0, 60.0)))
    # base present, new missing: New and H empty, Base shown
    base, new, h = by_key["ImageNet", "linear_probe"]
    assert base.mean == pytest.approx(86.0) and new is None and h is None
    assert by_key["Caltech101", "linear_probe"] == [None, None, None]
    assert by_key["Average", "linear_probe"] == [None, None, None]


def transfer_rows(protocol: str, targets: dict[str, float]) -> list[dict[str, Any]]:
    rows = []
    for method, shift in (("coop", 0.0), ("cocoop", 1.5)):
        rows += seeded((71.0 + shift, 71.5 + shift, 72.0 + shift), method=method, protocol=protocol)
        for target, value in targets.items():
            values = (value + shift - 0.5, value + shift, value + shift + 0.5)
            rows += seeded(values, method=method, protocol=protocol, eval_dataset=target)
    return rows


def test_cross_dataset_average_over_targets_only() -> None:
    rows = transfer_rows("cross_dataset", {"caltech101": 93.0, "oxford_pets": 89.0})
    table = cross_dataset_table(aggregate(frame(rows)), titles=TITLES)
    assert table[0] == ["Method", "ImageNet (source)", "Caltech101", "OxfordPets", "Average"]
    coop = dict(zip(table[0], table[2], strict=True))
    assert coop["ImageNet (source)"].mean == pytest.approx(71.5)
    assert coop["Average"] == Stat(pytest.approx(91.0))


def test_domain_generalization_layout() -> None:
    rows = transfer_rows("domain_generalization", {"imagenetv2": 64.0, "imagenet_sketch": 48.0})
    rows = [
        r
        for r in rows
        if not (
            r["method"] == "cocoop" and r["eval_dataset"] == "imagenet_sketch" and r["seed"] == 2
        )
    ]
    table = domain_generalization_table(aggregate(frame(rows)), titles=TITLES)
    assert table[0] == ["Method", "ImageNet (source)", "ImageNet-V2", "ImageNet-Sketch", "Average"]
    assert table[1][0] == "cocoop" and table[1][3] is None and table[1][4] is None
    assert table[2][4] == Stat(pytest.approx(56.0))


def test_render_formats() -> None:
    table = [
        ["Method", "A", "Average"],
        ["coop", Stat(71.234, 0.44), Stat(70.0)],
        ["x_y", None, None],
    ]
    github = render(table, "github")
    assert "71.2 ± 0.4" in github and " 70.0 |" in github
    latex = render(table, "latex")
    assert r"71.2 $\pm$ 0.4" in latex and r"x\_y" in latex and "\\toprule" in latex
    csv_text = render(table, "csv")
    assert csv_text.splitlines() == [
        "Method,A,A std,Average,Average std",
        "coop,71.23,0.44,70.00,",
        "x_y,,,,",
    ]
    with pytest.raises(ValueError):
        render(table, "html")


def test_leaderboard_separates_backbones_and_shots() -> None:
    rows = seeded((60.0, 61.0, 62.0)) + seeded((40.0, 41.0, 42.0), shots=1)
    rows += seeded((30.0, 31.0, 32.0), backbone="RN50")
    text = leaderboard(frame(rows), titles=TITLES)
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [
        "## few_shot (RN50, openai) · 16 shots",
        "## few_shot (ViT-B-16, openai) · 1 shots",
        "## few_shot (ViT-B-16, openai) · 16 shots",
    ]
    assert leaderboard(frame(rows), protocol="base_to_new") == ""


# -- golden renderings ---------------------------------------------------------------------


def golden_df() -> pd.DataFrame:
    rows = []
    values = {"imagenet": 62.0, "caltech101": 91.0, "oxford_pets": 87.0}
    for method, shift in (("coop", 0.0), ("kgcoop", 1.3), ("zeroshot", -3.7)):
        for dataset, v in values.items():
            if method == "kgcoop" and dataset == "oxford_pets":
                continue  # average must be empty
            rows += seeded(
                (v + shift - 0.4, v + shift + 0.1, v + shift + 0.6), method=method, dataset=dataset
            )
    rows += base_to_new_rows()
    rows += transfer_rows("cross_dataset", {"caltech101": 93.0, "oxford_pets": 89.0})
    rows += transfer_rows("domain_generalization", {"imagenetv2": 64.0, "imagenet_sketch": 48.0})
    # cocoop lacks seed 2 on ImageNet-V2: that cell and cocoop's DG average are empty
    rows = [
        r
        for r in rows
        if not (
            r["protocol"] == "domain_generalization"
            and r["method"] == "cocoop"
            and r["eval_dataset"] == "imagenetv2"
            and r["seed"] == 2
        )
    ]
    rows.append(
        row(
            method="cocoop",
            protocol="domain_generalization",
            seed=3,
            status="failed",
            metric="error",
            value=math.nan,
            split="",
            error="boom",
        )
    )
    return frame(rows)


BUILDERS = {
    "few_shot": few_shot_table,
    "base_to_new": base_to_new_table,
    "cross_dataset": cross_dataset_table,
    "domain_generalization": domain_generalization_table,
}
EXTENSIONS = {"github": "md", "latex": "tex", "csv": "csv"}


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    assert path.is_file(), f"{path} missing: run with UPDATE_GOLDEN=1"
    assert text.rstrip("\n") == path.read_text(encoding="utf-8").rstrip("\n")


@pytest.mark.parametrize("fmt", sorted(EXTENSIONS))
@pytest.mark.parametrize("protocol", sorted(BUILDERS))
def test_golden_tables(protocol: str, fmt: str) -> None:
    cells = aggregate(golden_df())
    table = BUILDERS[protocol](cells[cells["protocol"] == protocol], titles=TITLES)
    check_golden(f"{protocol}.{EXTENSIONS[fmt]}", render(table, fmt))


@pytest.mark.parametrize("fmt", sorted(EXTENSIONS))
def test_golden_leaderboard(fmt: str) -> None:
    check_golden(f"leaderboard.{EXTENSIONS[fmt]}", leaderboard(golden_df(), fmt=fmt, titles=TITLES))


def test_reads_the_stored_schema(tmp_path: Path) -> None:
    """Rows round-tripped through the results store (Arrow types, tz-aware timestamps)."""
    from benchmark.results import ResultStore

    store = ResultStore(tmp_path)
    rows = golden_df().drop(columns=["schema_version"]).to_dict("records")
    for run_id in sorted({r["run_id"] for r in rows}):
        store.write_run(run_id, [r for r in rows if r["run_id"] == run_id])
    df = store.read().to_pandas()
    assert leaderboard(df, titles=TITLES) == leaderboard(golden_df(), titles=TITLES)
