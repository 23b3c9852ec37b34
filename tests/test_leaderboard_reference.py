"""``leaderboard --reference``: measured and published numbers side by side with the
difference, on a result table with rows for real datasets; the plain statement that the
papers publish nothing for the mini world; and the per-cell comparison (published value,
difference, beyond the seed spread) that paper recipes build on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.leaderboard import Stat, leaderboard
from benchmark.leaderboard.board import layouts
from benchmark.leaderboard.cells import aggregate, measurements
from benchmark.leaderboard.comparison import compare_cells, published_for
from benchmark.reference import AVERAGED_OVER, load
from benchmark.registry import build_registry
from tests.test_leaderboard import (
    EXTENSIONS,
    board_of,
    builtin_protocols,
    by_cell,
    cells_of,
    check_golden,
    frame,
    seeded,
)

TITLES = {"oxford_pets": "OxfordPets", "dtd": "DTD", "imagenet": "ImageNet"}
METHOD_TITLES = build_registry(autoload=False).method_titles()


@pytest.fixture(scope="module")
def published() -> pd.DataFrame:
    return load()


def base_to_new_rows() -> list[dict]:
    """ViT-B/16, 16 shots, as GCSCoOp's table 1; measured = published + an offset."""
    printed = {  # (method, dataset): (seen, unseen) of GCSCoOp table 1
        ("coop", "oxford_pets"): (94.19, 96.01),
        ("coop", "dtd"): (79.82, 45.17),
        ("prograd", "oxford_pets"): (94.59, 96.98),
        ("prograd", "dtd"): (76.85, 51.89),
        ("kgcoop", "oxford_pets"): (95.16, 96.61),
        ("kgcoop", "dtd"): (80.44, 56.69),
        ("gcscoop", "oxford_pets"): (95.43, 97.97),
        ("gcscoop", "dtd"): (80.32, 55.39),
    }
    rows = []
    for (method, dataset), (seen, unseen) in printed.items():
        for split, value in (("base", seen - 2.0), ("new", unseen + 1.0)):
            rows += seeded(
                (value - 0.5, value, value + 0.5),
                method=method,
                protocol="base_to_new",
                dataset=dataset,
                split=split,
            )
    return rows


def few_shot_rows(datasets, backbone: str = "RN50", shots: int = 4) -> list[dict]:
    rows = []
    for dataset in datasets:
        for method, value in (("coop", 70.0), ("prograd", 71.0)):
            rows += seeded(
                (value,) * 3, method=method, dataset=dataset, shots=shots, backbone=backbone
            )
    return rows


def sections(df: pd.DataFrame, published: pd.DataFrame, **options):
    options.setdefault("titles", TITLES)
    options.setdefault("method_titles", METHOD_TITLES)
    return board_of(df, reference=published, **options).sections


def test_base_to_new_measured_published_and_difference(published: pd.DataFrame) -> None:
    df = frame(base_to_new_rows())
    [section] = sections(df, published)
    cells = by_cell(section.table)
    assert cells["GCSCoOp", "OxfordPets Base"] == Stat(
        pytest.approx(93.43), pytest.approx((1 / 6) ** 0.5)
    )
    assert [cells["GCSCoOp · paper", f"OxfordPets {c}"] for c in ("Base", "New", "H")] == [
        Stat(95.43),
        Stat(97.97),
        Stat(96.68),
    ]
    assert cells["GCSCoOp · Δ", "OxfordPets Base"].mean == pytest.approx(-2.0)
    assert cells["GCSCoOp · Δ", "OxfordPets New"].mean == pytest.approx(1.0)
    measured_h = cells["GCSCoOp", "OxfordPets H"].mean
    assert cells["GCSCoOp · Δ", "OxfordPets H"].mean == pytest.approx(measured_h - 96.68)
    # two of the eleven datasets: no published average to compare with
    assert cells["CoOp · paper", "Average Base"] is None
    assert cells["CoOp", "Average Base"] is not None
    assert section.notes == ("Published: gcscoop table 1.",)
    # the paper and Δ rows stay under their method; methods ranked by the average H
    assert [r.label for r in section.table.rows][:3] == ["KgCoOp", "KgCoOp · paper", "KgCoOp · Δ"]

    lines = cells_of(leaderboard(df, titles=TITLES, reference=published))
    assert [
        "gcscoop · paper",
        "",
        "",
        "",
        "95.43",
        "97.97",
        "96.68",
        "80.32",
        "55.39",
        "65.57",
    ] in (lines)
    # seeds at ±0.5: std 0.41, so |Δ| > max(2 x 0.41, 0.5) is marked (the H's too, by its
    # per-seed spread); -0.6 and -0.0 are within it
    assert ["gcscoop · Δ", "", "", "", "-2.0!", "+1.0!", "-0.6", "-2.0!", "+1.0!", "-0.0"] in lines


def test_few_shot_average_over_the_papers_eleven_datasets(published: pd.DataFrame) -> None:
    """ProGrad's table 1 prints only averages over 11 datasets: compared when the table has
    exactly those; RN50 at 4 shots, CoOp 66.79 and ProGrad 68.45."""
    df = frame(few_shot_rows(sorted(AVERAGED_OVER["few_shot"])))
    [section] = sections(df, published)
    rows = {r.label: r.cells for r in section.table.rows}
    assert rows["CoOp · paper"][-1] == Stat(66.79)
    assert rows["CoOp · Δ"][-1].mean == pytest.approx(70.0 - 66.79)
    assert rows["ProGrad · paper"][-1] == Stat(68.45)
    assert all(cell is None for cell in rows["CoOp · paper"][:-1])  # no per-dataset numbers
    assert section.notes == ("Published: prograd-iccv2023 table 1.",)
    # other backbone, other shots, or fewer datasets: nothing to compare
    for other in (
        few_shot_rows(sorted(AVERAGED_OVER["few_shot"]), backbone="ViT-B-16"),
        few_shot_rows(sorted(AVERAGED_OVER["few_shot"]), shots=3),
        few_shot_rows(["oxford_pets", "dtd"]),
    ):
        found = board_of(frame(other), reference=published)
        [section] = found.sections
        assert [r.label for r in section.table.rows] == ["prograd", "coop"]  # no paper rows
        assert section.notes == ()
        assert found.notes == (
            "Tables without `· paper` rows have no published number for their methods, "
            "datasets, backbone and shot count.",
        )


def test_zero_shot_published_numbers_match_any_shot_count(published: pd.DataFrame) -> None:
    rows = seeded((70.0,) * 3, method="zeroshot", protocol="domain_generalization", shots=4)
    rows += seeded(
        (61.0,) * 3,
        method="zeroshot",
        protocol="domain_generalization",
        eval_dataset="imagenetv2",
        shots=4,
    )
    df = frame([{**r, "backbone": "RN50"} for r in rows])
    [section] = sections(df, published)
    paper = {r.label: r.cells for r in section.table.rows}["CLIP · paper"]
    assert paper[:2] == (Stat(58.18), Stat(51.34))


def test_mini_world_says_the_papers_publish_nothing_once(published: pd.DataFrame) -> None:
    rows = seeded((50.0,) * 3, dataset="mini_shapes", backbone="vlprompt-tiny", pretrained="")
    rows += [{**r, "shots": 4} for r in rows]
    text = leaderboard(frame(rows), reference=published)
    assert text.startswith(
        "The papers publish no numbers for the datasets mini_shapes: their results are "
        "shown without published numbers.\n\n## few_shot"
    )
    assert text.count("publish no") == 1 and text.count("## few_shot") == 2
    assert "· paper" not in text and "Tables without" not in text


def test_cli_reference(tmp_path: Path, capsys) -> None:
    from benchmark.cli import main
    from benchmark.results import ResultStore

    rows = frame(base_to_new_rows()).drop(columns=["schema_version"]).to_dict("records")
    store = ResultStore(tmp_path)
    for run_id in sorted({r["run_id"] for r in rows}):
        store.write_run(run_id, [r for r in rows if r["run_id"] == run_id])
    assert main(["leaderboard", "--results", str(tmp_path), "--reference"]) == 0
    lines = [line[:7] for line in cells_of(capsys.readouterr().out)]
    assert ["GCSCoOp · paper", "", "", "", "80.32", "55.39", "65.57"] in lines  # DTD first
    assert main(["leaderboard", "--results", str(tmp_path), "--reference", "nope.csv"]) == 3
    assert "nope.csv: no such file" in capsys.readouterr().err


def golden_reference_df() -> pd.DataFrame:
    """Base-to-new on OxfordPets and DTD, plus: CoCoOp with base but no new split on
    OxfordPets, and GCSCoOp's DTD new accuracy missing seed 3."""
    rows = [
        r
        for r in base_to_new_rows()
        if (r["method"], r["dataset"], r["split"], r["seed"]) != ("gcscoop", "dtd", "new", 3)
    ]
    rows += seeded(
        (92.0, 93.0, 94.0),
        method="cocoop",
        protocol="base_to_new",
        dataset="oxford_pets",
        split="base",
    )
    return frame(rows)


@pytest.mark.parametrize("fmt", ["github", "latex", "csv"])
def test_golden_reference(published: pd.DataFrame, fmt: str) -> None:
    text = leaderboard(
        golden_reference_df(),
        fmt=fmt,
        titles=TITLES,
        method_titles=METHOD_TITLES,
        protocols=builtin_protocols(),
        reference=published,
    )
    check_golden(f"reference.{EXTENSIONS[fmt]}", text)
    if fmt == "github":
        lines = cells_of(text)
        # a missing split or seed: empty measured cell and Δ, never a partial mean
        rows = {line[0]: line[1:] for line in lines}
        assert rows["CoCoOp"] == ["", "", "", "93.0 ± 0.8", "", "", "", "", ""]
        assert rows["CoCoOp · Δ"] == ["", "", "", "-0.5", "", "", "", "", ""]
        assert rows["GCSCoOp"][:3] == ["**85.9**", "", ""] and rows["GCSCoOp"][6:] == [
            "78.3 ± 0.4",
            "",
            "",
        ]
        assert rows["GCSCoOp · Δ"][6:] == ["-2.0!", "", ""]


def test_base_to_new_average_as_the_papers_compute_it(published: pd.DataFrame) -> None:
    """Measured = GCSCoOp's printed per-dataset CoOp numbers on all 11 datasets: the
    comparison's Average (base, new, and H as the mean of per-dataset H) matches the printed
    AVG row to its rounding; with H of the averages, the average H is not compared."""
    printed = published[
        (published["paper"] == "gcscoop")
        & (published["table"] == "1")
        & (published["method"] == "coop")
        & (published["dataset"] != "average")
        & (published["split"] != "hm")
    ]
    rows = []
    for dataset, split, value in zip(
        printed["dataset"], printed["split"], printed["value"], strict=True
    ):
        rows += seeded((value,) * 3, protocol="base_to_new", dataset=dataset, split=split)
    [section] = sections(frame(rows), published)
    average = [c.name for c in section.table.columns][:3]
    assert average == ["Average Base", "Average New", "Average H (mean of H)"]
    cells = by_cell(section.table)
    assert [cells["CoOp · paper", name].mean for name in average] == [82.68, 64.15, 71.40]
    for name in average:
        assert abs(cells["CoOp · Δ", name].mean) <= 0.01
    [section] = sections(frame(rows), published, average_h="of-means")
    cells = by_cell(section.table)
    assert cells["CoOp · paper", "Average H (of means)"] is None
    assert cells["CoOp · paper", "Average Base"] == Stat(82.68)


def comparisons(df: pd.DataFrame, published: pd.DataFrame) -> dict:
    """(method, column name) -> CellComparison of the one table of ``df``."""
    [data] = measurements(aggregate(df, metric="accuracy"))
    scope = data.scope(TITLES, "mean-of-h")
    [layout] = layouts(builtin_protocols()[data.protocol], scope)
    found = published_for(published, data.protocol, data.backbone, data.pretrained, data.shots)
    methods = sorted(data.methods(data.cell_keys()))
    return {(c.method, c.column.name): c for c in compare_cells(layout, data, found, methods)}


def test_cell_comparison_beyond_the_seed_spread(published: pd.DataFrame) -> None:
    """|Δ| above max(2 x the population std over our seeds, 0.5) is beyond the spread, at or
    below it is reproduced; an H gets the std of each seed's own H."""
    rows = []
    # GCSCoOp on OxfordPets, printed 95.43 / 97.97 / 96.68
    for split, values in (("base", (94.0, 95.0, 96.0)), ("new", (98.0, 98.1, 98.2))):
        rows += seeded(
            values, method="gcscoop", protocol="base_to_new", dataset="oxford_pets", split=split
        )
    found = comparisons(frame(rows), published)
    base = found["gcscoop", "OxfordPets Base"]
    assert (base.published, base.source) == (95.43, ("gcscoop", "1"))
    assert base.mean == pytest.approx(95.0) and base.seed_values == (94.0, 95.0, 96.0)
    assert base.std == pytest.approx((2 / 3) ** 0.5)
    assert base.delta == pytest.approx(-0.43)
    assert base.tolerance == pytest.approx(2 * (2 / 3) ** 0.5)
    assert base.beyond_spread is False  # |-0.43| within 1.63
    new = found["gcscoop", "OxfordPets New"]
    assert new.delta == pytest.approx(0.13) and new.tolerance == 0.5  # 2 x 0.08 < the floor
    assert new.beyond_spread is False
    h = found["gcscoop", "OxfordPets H"]
    from benchmark.leaderboard import harmonic_mean

    per_seed = [harmonic_mean(b, n) for b, n in ((94.0, 98.0), (95.0, 98.1), (96.0, 98.2))]
    assert h.seed_values == pytest.approx(per_seed)
    assert h.std == pytest.approx(np.std(per_seed))
    assert h.beyond_spread == (abs(h.delta) > max(2 * np.std(per_seed), 0.5))
    # no published average over two datasets; nothing to decide
    average = found["gcscoop", "Average Base"]
    assert average.published is None and average.delta is None and average.beyond_spread is None
    assert average.tolerance == base.tolerance  # one dataset's average: its seeds' spread


@pytest.mark.parametrize(
    ("values", "beyond"),
    [
        ((97.0, 97.1, 97.2), True),  # |Δ| 0.87 > max(2 x 0.08, 0.5)
        ((97.48, 97.48, 97.48), False),  # |Δ| 0.49: within the floor
        ((97.46, 97.46, 97.46), True),  # |Δ| 0.51: beyond a spread of zero
        ((96.0, 97.5, 99.0), False),  # |Δ| 0.47 within a wide spread
        ((95.0, 96.0, 97.0), True),  # |Δ| 1.97 > 2 x 0.82
        ((94.0, 96.0, 98.0), False),  # the same |Δ| within 2 x 1.63
    ],
)
def test_the_reproduced_rule(published: pd.DataFrame, values, beyond) -> None:
    rows = []
    for split, split_values in (("base", (95.0, 95.0, 95.0)), ("new", values)):
        rows += seeded(
            split_values,
            method="gcscoop",
            protocol="base_to_new",
            dataset="oxford_pets",
            split=split,
        )
    new = comparisons(frame(rows), published)["gcscoop", "OxfordPets New"]  # printed 97.97
    assert new.beyond_spread is beyond
    assert new.beyond_spread == (abs(new.delta) > max(2 * np.std(values), 0.5))


def test_cell_comparison_one_seed_and_empty_cells(published: pd.DataFrame) -> None:
    rows = seeded(
        (95.93,), seeds=(1,), method="gcscoop", protocol="base_to_new", dataset="oxford_pets"
    )
    rows = [{**r, "split": "base"} for r in rows]
    base = comparisons(frame(rows), published)["gcscoop", "OxfordPets Base"]
    assert base.std is None and base.seed_values == (95.93,) and base.tolerance == 0.5
    assert base.beyond_spread is False  # one seed: within the 0.5-point floor
    rows = [{**r, "value": 95.94} for r in rows]
    base = comparisons(frame(rows), published)["gcscoop", "OxfordPets Base"]
    assert base.beyond_spread is True
    rows = [{**r, "seed": 2} for r in rows] + seeded(
        (95.0,),
        seeds=(1,),
        method="coop",
        protocol="base_to_new",
        dataset="oxford_pets",
        split="base",
    )  # gcscoop misses seed 1: its cell is empty, so is its spread
    base = comparisons(frame(rows), published)["gcscoop", "OxfordPets Base"]
    assert base.mean is None and base.seed_values == () and base.beyond_spread is None
    assert base.tolerance is None
