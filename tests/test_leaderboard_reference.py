"""``leaderboard --reference``: measured and published numbers side by side with the
difference, on a result table with rows for real datasets; and the plain statement that the
papers publish nothing for the mini world."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from benchmark.leaderboard import Stat, leaderboard, sections
from benchmark.reference import AVERAGED_OVER, load
from tests.test_leaderboard import EXTENSIONS, check_golden, frame, seeded

TITLES = {"oxford_pets": "OxfordPets", "dtd": "DTD", "imagenet": "ImageNet"}


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


def by_label(table) -> dict:
    return {tuple(r[:2]) if isinstance(r[1], str) else r[0]: r for r in table[1:]}


def test_base_to_new_measured_published_and_difference(published: pd.DataFrame) -> None:
    df = frame(base_to_new_rows())
    [section] = sections(df, titles=TITLES, reference=published)
    rows = by_label(section.table)
    measured = rows["OxfordPets", "gcscoop"]
    paper = rows["OxfordPets", "gcscoop · paper"]
    delta = rows["OxfordPets", "gcscoop · Δ"]
    assert measured[2] == Stat(pytest.approx(93.43), pytest.approx((1 / 6) ** 0.5))
    assert paper[2:] == [
        Stat(95.43, style="paper"),
        Stat(97.97, style="paper"),
        Stat(96.68, style="paper"),
    ]
    assert delta[2].mean == pytest.approx(-2.0) and delta[3].mean == pytest.approx(1.0)
    assert delta[4].mean == pytest.approx(measured[4].mean - 96.68)
    # two of the eleven datasets: no published average to compare with, so no paper rows
    assert ("Average", "coop · paper") not in rows and ("Average", "coop") in rows
    assert section.notes[0] == "Published: gcscoop table 1."

    lines = cells_of(leaderboard(df, titles=TITLES, reference=published))
    assert ["OxfordPets", "gcscoop", "93.4 ± 0.4", "99.0 ± 0.4", "96.1"] in lines
    assert ["OxfordPets", "gcscoop · paper", "95.43", "97.97", "96.68"] in lines
    assert ["OxfordPets", "gcscoop · Δ", "-2.0", "+1.0", "-0.6"] in lines
    assert ["DTD", "kgcoop · paper", "80.44", "56.69", "66.51"] in lines


def cells_of(markdown: str) -> list[list[str]]:
    """The cells of every table line of a github-format leaderboard."""
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in markdown.splitlines()
        if line.startswith("|")
    ]


def test_few_shot_average_over_the_papers_eleven_datasets(published: pd.DataFrame) -> None:
    """ProGrad's table 1 prints only averages over 11 datasets: compared when the table has
    exactly those; RN50 at 4 shots, CoOp 66.79 and ProGrad 68.45."""
    df = frame(few_shot_rows(sorted(AVERAGED_OVER["few_shot"])))
    [section] = sections(df, reference=published)
    rows = {r[0]: r for r in section.table[1:]}
    assert rows["coop · paper"][-1] == Stat(66.79, style="paper")
    assert rows["coop · Δ"][-1].mean == pytest.approx(70.0 - 66.79)
    assert rows["prograd · paper"][-1] == Stat(68.45, style="paper")
    assert all(cell is None for cell in rows["coop · paper"][1:-1])  # no per-dataset numbers
    assert section.notes == ["Published: prograd-iccv2023 table 1."]
    # other backbone, other shots, or fewer datasets: nothing to compare
    for other in (
        few_shot_rows(sorted(AVERAGED_OVER["few_shot"]), backbone="ViT-B-16"),
        few_shot_rows(sorted(AVERAGED_OVER["few_shot"]), shots=3),
        few_shot_rows(["oxford_pets", "dtd"]),
    ):
        [section] = sections(frame(other), reference=published)
        assert len(section.table) == 3  # header, coop, prograd: no paper rows
        assert section.notes == [
            "No published number matches this table's methods, datasets, backbone and shots."
        ]


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
    [section] = sections(df, titles=TITLES, reference=published)
    paper = {r[0]: r for r in section.table[1:]}["zeroshot · paper"]
    assert paper[1:3] == [Stat(58.18, style="paper"), Stat(51.34, style="paper")]


def test_mini_world_says_the_papers_publish_nothing(published: pd.DataFrame) -> None:
    rows = seeded((50.0,) * 3, dataset="mini_shapes", backbone="vlprompt-tiny", pretrained="")
    text = leaderboard(frame(rows), reference=published)
    assert text.startswith(
        "The papers publish no numbers for the datasets mini_shapes: their results are "
        "shown without published numbers."
    )
    assert "The papers publish no numbers for mini_shapes." in text
    assert "· paper" not in text


def test_cli_reference(tmp_path: Path, capsys) -> None:
    from benchmark.cli import main
    from benchmark.results import ResultStore

    rows = frame(base_to_new_rows()).drop(columns=["schema_version"]).to_dict("records")
    store = ResultStore(tmp_path)
    for run_id in sorted({r["run_id"] for r in rows}):
        store.write_run(run_id, [r for r in rows if r["run_id"] == run_id])
    assert main(["leaderboard", "--results", str(tmp_path), "--reference"]) == 0
    out = capsys.readouterr().out
    assert ["OxfordPets", "gcscoop · paper", "95.43", "97.97", "96.68"] in cells_of(out)
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
    text = leaderboard(golden_reference_df(), fmt=fmt, titles=TITLES, reference=published)
    check_golden(f"reference.{EXTENSIONS[fmt]}", text)
    if fmt == "github":
        lines = cells_of(text)
        # a missing split or seed: empty measured cell and Δ, never a partial mean
        assert ["OxfordPets", "cocoop", "93.0 ± 0.8", "", ""] in lines
        assert ["OxfordPets", "cocoop · Δ", "-0.5", "", ""] in lines
        assert ["DTD", "gcscoop", "78.3 ± 0.4", "", ""] in lines
        assert ["DTD", "gcscoop · Δ", "-2.0", "", ""] in lines


def test_base_to_new_average_as_the_papers_compute_it(published: pd.DataFrame) -> None:
    """Measured = GCSCoOp's printed per-dataset CoOp numbers on all 11 datasets: the
    comparison's Average (base, new, and H as the mean of per-dataset H) matches the printed
    AVG row to its rounding."""
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
    [section] = sections(frame(rows), reference=published)
    table = {tuple(r[:2]): r[2:] for r in section.table[1:]}
    assert [p.mean for p in table["Average", "coop · paper"]] == [82.68, 64.15, 71.40]
    for delta in table["Average", "coop · Δ"]:
        assert abs(delta.mean) <= 0.01
    assert section.notes[-1].startswith("Average H here is the mean of the per-dataset H")
