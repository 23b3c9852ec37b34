"""``leaderboard --recipe``: a paper's table in its layout from synthetic results of the
recipe's own planned cells, with the published numbers, the differences and the marks of
differences beyond the seed spread; ablation rows by their variant, never mixed with the
main rows; cells the suite cannot reproduce shown with their reason; the average H and the
spread of averages as the papers and the rule define them; the same in Markdown, HTML and
through the command line."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from benchmark import recipes
from benchmark.cli import main
from benchmark.leaderboard.recipe import recipe_board, select_runs
from benchmark.leaderboard.table import DELTA, NotReproduced, Stat
from benchmark.leaderboard.text import render_board
from benchmark.reference import load
from benchmark.registry import build_registry
from benchmark.results import ResultStore
from tests.test_leaderboard import by_cell, cells_of, frame, row

REGISTRY = build_registry(autoload=False)
PROTOCOLS = {name: REGISTRY.protocols.get(name) for name in REGISTRY.protocols}
TITLES = {name: REGISTRY.datasets.get(name).display_name for name in REGISTRY.datasets}
METHOD_TITLES = REGISTRY.method_titles()
BOOK = recipes.load()
TRANSFER = ("cross_dataset", "domain_generalization")


@pytest.fixture(scope="module")
def published() -> pd.DataFrame:
    return load()


Value = Callable[[recipes.RecipeCell, str, str], float | None]


def results(recipe: recipes.Recipe, value: Value) -> list[dict]:
    """One result row per planned cell of ``recipe`` and split it evaluates, valued by
    ``value(cell, eval_dataset, split)`` (None: no row), with the cell's recorded config."""
    rows = []
    for planned in recipes.recipe_cells(REGISTRY, recipe):
        cell = planned.cell
        if recipe.protocol == "base_to_new":
            evaluated = [(cell.dataset, "base"), (cell.dataset, "new")]
        elif recipe.protocol in TRANSFER:
            evaluated = [(d, "all") for d in dict.fromkeys((cell.dataset, *recipe.datasets))]
        else:
            evaluated = [(cell.dataset, "all")]
        run_id = f"{abs(hash(planned.key)):x}"
        for eval_dataset, split in evaluated:
            found = value(planned, eval_dataset, split)
            if found is None:
                continue
            rows.append(
                row(
                    run_id=run_id,
                    method=cell.method,
                    protocol=cell.protocol,
                    dataset=cell.dataset,
                    eval_dataset=eval_dataset,
                    split=split,
                    shots=cell.shots,
                    seed=cell.seed,
                    backbone=planned.backbone,
                    pretrained=planned.pretrained,
                    config=planned.key[-1],
                    value=found,
                )
            )
    return rows


def printed(published: pd.DataFrame, recipe: recipes.Recipe) -> dict[tuple, float]:
    """(method, variant, dataset, eval_dataset, split, shots) -> the recipe table's number."""
    rows = published[(published["paper"] == recipe.paper) & (published["table"] == recipe.table)]
    columns = ["method", "variant", "dataset", "eval_dataset", "split", "shots", "value"]
    return {tuple(r[:-1]): r[-1] for r in rows[columns].itertuples(index=False)}


def board(df: pd.DataFrame, recipe: recipes.Recipe, published: pd.DataFrame):
    cells = recipes.recipe_cells(REGISTRY, recipe)
    return recipe_board(
        select_runs(df, cells),
        recipe,
        cells,
        published,
        protocols=PROTOCOLS,
        titles=TITLES,
        method_titles=METHOD_TITLES,
    )


OFFSETS = {1: -0.5, 2: 0.0, 3: 0.5}
"""Seed offsets: a cell's population std is 0.41, its tolerance max(0.82, 0.5)."""


def gcscoop_table1(published: pd.DataFrame) -> tuple[recipes.Recipe, pd.DataFrame]:
    """GCSCoOp's table 1 on OxfordPets and DTD: every cell its printed number plus a shift
    (CoOp +0.3, within the spread; GCSCoOp's base -2.0, beyond it; SCoOp† +1.5), each seed
    ±0.5 around it; and runs the table must not take: SCoOp at another rho (newer), and
    SCoOp on another backbone."""
    recipe = recipes.narrow(BOOK.get("gcscoop/table1"), datasets=["oxford_pets", "dtd"])
    numbers = printed(published, recipe)
    shift = {("coop", ""): 0.3, ("gcscoop", ""): -2.0, ("scoop", "best_rho"): 1.5}

    def value(planned: recipes.RecipeCell, eval_dataset: str, split: str) -> float:
        cell = planned.cell
        shots = 0 if cell.method == "zeroshot" else cell.shots
        paper = numbers[cell.method, planned.variant, cell.dataset, eval_dataset, split, shots]
        moved = shift.get((cell.method, planned.variant), 0.0)
        if cell.method == "gcscoop" and split == "new":
            moved = 0.0
        return paper + moved + OFFSETS[cell.seed]

    rows = results(recipe, value)
    stray = [r for r in rows if r["method"] == "scoop" and r["config"].find('"rho": 0.1') >= 0]
    assert stray  # SCoOp's own rho on OxfordPets
    later = pd.Timestamp("2026-02-01", tz="UTC")
    rows += [
        {**r, "config": r["config"].replace('"rho": 0.1', '"rho": 0.9'), "value": 1.0}
        | {"timestamp": later, "run_id": r["run_id"] + "x"}
        for r in stray
    ]
    rows += [{**r, "backbone": "RN50", "value": 2.0, "run_id": r["run_id"] + "y"} for r in stray]
    return recipe, frame(rows)


def test_base_to_new_table_in_the_papers_layout(published) -> None:
    recipe, df = gcscoop_table1(published)
    found = board(df, recipe, published)
    [section] = found.sections
    table = section.table
    names = [c.name for c in table.columns]
    assert names[:3] == ["Average Base", "Average New", "Average H (mean of H)"]
    assert names[3:] == [f"{d} {s}" for d in ("OxfordPets", "DTD") for s in ("Base", "New", "H")]
    measured = [r.label for r in table.rows if r.kind == "measured"]
    # the paper's order (the recipe's), the ablation last, labelled by its variant
    assert measured == [
        "CLIP",
        "CoOp",
        "CoCoOp",
        "ProGrad",
        "KgCoOp",
        "SCoOp",
        "GCSCoOp",
        "SCoOp (best_rho)",
    ]
    cells = by_cell(table)
    numbers = printed(published, recipe)
    pets = numbers["gcscoop", "", "oxford_pets", "oxford_pets", "base", 16]
    assert cells["GCSCoOp", "OxfordPets Base"] == Stat(
        pytest.approx(pets - 2.0), pytest.approx((1 / 6) ** 0.5)
    )
    assert cells["GCSCoOp · paper", "OxfordPets Base"] == Stat(pets)
    delta = cells["GCSCoOp · Δ", "OxfordPets Base"]
    assert delta.mean == pytest.approx(-2.0) and delta.beyond_spread
    assert not cells["GCSCoOp · Δ", "OxfordPets New"].beyond_spread
    coop = cells["CoOp · Δ", "DTD New"]
    assert coop.mean == pytest.approx(0.3) and not coop.beyond_spread
    # two of the eleven datasets: averages shown with their spread, not compared
    assert cells["CoOp", "Average Base"].std == pytest.approx((1 / 6) ** 0.5)
    assert cells["CoOp · paper", "Average Base"] is None
    assert any("The paper averages over 11 datasets; 2 of them are here" in n for n in found.notes)
    assert section.notes == ("Published: gcscoop table 1.",)


def test_ablation_rows_never_take_the_main_rows_runs(published) -> None:
    """SCoOp and SCoOp† are the same method with other configs: each row shows its own
    runs; the newer run at a third rho and the run on another backbone count for neither."""
    recipe, df = gcscoop_table1(published)
    cells = by_cell(board(df, recipe, published).sections[0].table)
    numbers = printed(published, recipe)
    for dataset, title in (("oxford_pets", "OxfordPets"), ("dtd", "DTD")):
        own = numbers["scoop", "", dataset, dataset, "base", 16]
        dagger = numbers["scoop", "best_rho", dataset, dataset, "base", 16]
        assert cells["SCoOp", f"{title} Base"].mean == pytest.approx(own)
        assert cells["SCoOp (best_rho)", f"{title} Base"].mean == pytest.approx(dagger + 1.5)
        assert cells["SCoOp (best_rho) · paper", f"{title} Base"] == Stat(dagger)
        assert cells["SCoOp (best_rho) · Δ", f"{title} Base"].mean == pytest.approx(1.5)


def test_a_cell_two_rows_share_serves_both(published) -> None:
    """SCoOp† on ImageNet runs SCoOp's own rho: one run, shown in both rows."""
    recipe = recipes.narrow(BOOK.get("gcscoop/table1"), datasets=["imagenet"])
    df = frame(results(recipe, lambda c, e, s: 70.0 + c.cell.seed))
    cells = by_cell(board(df, recipe, published).sections[0].table)
    assert cells["SCoOp", "ImageNet Base"] == cells["SCoOp (best_rho)", "ImageNet Base"]
    assert cells["SCoOp", "ImageNet Base"].mean == pytest.approx(72.0)


def test_the_average_h_is_the_papers_mean_of_h(published) -> None:
    """CoOp measured at GCSCoOp's printed per-dataset numbers on all eleven datasets: the
    recipe's Average Base, New and H match the printed averages, H as the mean of the
    per-dataset H (H of the averages would be 0.3 higher)."""
    recipe = recipes.narrow(BOOK.get("gcscoop/table1"), methods=["coop"])
    numbers = printed(published, recipe)

    def value(planned: recipes.RecipeCell, eval_dataset: str, split: str) -> float:
        cell = planned.cell
        return numbers["coop", "", cell.dataset, eval_dataset, split, 16] + OFFSETS[cell.seed]

    [section] = board(frame(results(recipe, value)), recipe, published).sections
    cells = by_cell(section.table)
    for column, split in (("Base", "base"), ("New", "new"), ("H (mean of H)", "hm")):
        paper = numbers["coop", "", "average", "average", split, 16]
        assert cells["CoOp · paper", f"Average {column}"] == Stat(paper)
        assert abs(cells["CoOp · Δ", f"Average {column}"].mean) <= 0.01
        assert not cells["CoOp · Δ", f"Average {column}"].beyond_spread


def test_shots_as_columns_and_lambdas_as_rows(published) -> None:
    """ProGrad's table 7b: a row per lambda, a column per shot count on DTD; lambda 1.0 is
    ProGrad's own setting below 8 shots, so table 1's runs fill it there."""
    recipe = BOOK.get("prograd-iccv2023/table7b")
    numbers = printed(published, recipe)

    def value(planned: recipes.RecipeCell, eval_dataset: str, split: str) -> float | None:
        cell = planned.cell
        if planned.variant == "lambda=1.0" and cell.shots == 1:
            return None  # left to table 1's run
        return numbers["prograd", planned.variant, "dtd", "dtd", "all", cell.shots] + 0.1

    table1 = recipes.narrow(
        BOOK.get("prograd-iccv2023/table1"), methods=["prograd"], datasets=["dtd"], shots=[1]
    )
    df = frame(results(recipe, value) + results(table1, lambda c, e, s: 50.0 + c.cell.seed))
    found = board(df, recipe, published)
    [section] = found.sections
    assert [c.name for c in section.table.columns] == [
        "DTD 1 shot",
        "DTD 2 shots",
        "DTD 4 shots",
        "DTD 8 shots",
        "DTD 16 shots",
    ]
    labels = [r.label for r in section.table.rows if r.kind == "measured"]
    lambdas = ("0", "0.2", "0.4", "0.7", "0.9", "1.0")
    assert labels == [f"ProGrad (lambda={x})" for x in lambdas]
    cells = by_cell(section.table)
    assert cells["ProGrad (lambda=0.2) · Δ", "DTD 4 shots"].mean == pytest.approx(0.1)
    assert cells["ProGrad (lambda=0.2) · paper", "DTD 16 shots"] == Stat(
        numbers["prograd", "lambda=0.2", "dtd", "dtd", "all", 16]
    )
    # table 1's ProGrad on DTD at 1 shot is lambda 1.0's cell there; none is lambda 0.2's
    assert cells["ProGrad (lambda=1.0)", "DTD 1 shot"].mean == pytest.approx(52.0)
    assert cells["ProGrad (lambda=0.2)", "DTD 1 shot"].mean == pytest.approx(
        numbers["prograd", "lambda=0.2", "dtd", "dtd", "all", 1] + 0.1
    )
    text = render_board(found)
    assert "## prograd-iccv2023/table7b · few_shot (RN50, openai) · 1, 2, 4, 8, 16 shots" in text


def test_several_datasets_average_first_then_each_dataset(published) -> None:
    recipe = recipes.narrow(BOOK.get("prograd-iccv2023/table1"), methods=["coop", "prograd"])
    df = frame(results(recipe, lambda c, e, s: 60.0 + c.cell.shots / 4 + c.cell.seed))
    first, second = board(df, recipe, published).sections
    assert [c.name for c in first.table.columns][:2] == ["Average 1 shot", "Average 2 shots"]
    cells = by_cell(first.table)
    assert cells["CoOp", "Average 16 shots"].mean == pytest.approx(66.0)
    paper = printed(published, recipe)["coop", "", "average", "average", "all", 16]
    assert cells["CoOp · paper", "Average 16 shots"] == Stat(paper)
    assert cells["CoOp · Δ", "Average 16 shots"].beyond_spread == (abs(66.0 - paper) > 0.82)
    assert second.heading.endswith("· each dataset")
    assert len(second.table.columns) == 11 * 5
    assert second.table.columns[0].name == "ImageNet 1 shot"


def test_the_spread_of_an_average_is_the_std_of_each_seeds_average(published) -> None:
    """GCSCoOp's table 2 (ImageNet to V2, Sketch, A, R): seeds that disagree on every target
    in opposite directions agree on their average; its Δ is judged by the spread of the
    per-seed averages (near zero), not by that of the cells."""
    recipe = recipes.narrow(BOOK.get("gcscoop/table2"), methods=["coop"])
    numbers = printed(published, recipe)
    swing = {"imagenetv2": 1, "imagenet_sketch": -1, "imagenet_a": 1, "imagenet_r": -1}

    def value(planned: recipes.RecipeCell, eval_dataset: str, split: str) -> float:
        paper = numbers["coop", "", "imagenet", eval_dataset, "all", 16]
        return paper + 0.6 + swing.get(eval_dataset, 0) * 2.0 * (planned.cell.seed - 2)

    [section] = board(frame(results(recipe, value)), recipe, published).sections
    cells = by_cell(section.table)
    assert [c.name for c in section.table.columns] == [
        "ImageNet (source)",
        "ImageNet-V2",
        "ImageNet-Sketch",
        "ImageNet-A",
        "ImageNet-R",
        "Average",
    ]
    assert cells["CoOp", "ImageNet-A"].std == pytest.approx(statistics.pstdev([-2, 0, 2]))
    assert not cells["CoOp · Δ", "ImageNet-A"].beyond_spread  # 0.6 within 2 x 1.63
    average = cells["CoOp", "Average"]
    assert average.std == pytest.approx(0.0, abs=1e-9)
    paper = numbers["coop", "", "imagenet", "average", "all", 16]
    delta = cells["CoOp · Δ", "Average"]
    assert delta.mean == pytest.approx(
        0.6 + sum(numbers["coop", "", "imagenet", t, "all", 16] for t in swing) / 4 - paper,
        abs=1e-9,
    )
    assert delta.beyond_spread  # 0.6 beyond max(2 x 0, 0.5)


def test_cells_the_suite_cannot_reproduce_show_why(published) -> None:
    """ProGrad's table 2a: the linear probe on ImageNet-A and -R, and their average, are n/r
    with the reason under the table; the published numbers stay."""
    recipe = BOOK.get("prograd-iccv2023/table2a")

    def value(planned: recipes.RecipeCell, eval_dataset: str, split: str) -> float | None:
        return None if eval_dataset in ("imagenet_a", "imagenet_r") else 50.0

    [section] = board(frame(results(recipe, value)), recipe, published).sections
    cells = by_cell(section.table)
    for column in ("ImageNet-A", "ImageNet-R", "Average"):
        assert cells["Linear probe", column] == NotReproduced()
        assert cells["Linear probe · Δ", column] is None
    assert cells["Linear probe · paper", "ImageNet-A"] == Stat(11.18)
    assert cells["CoOp", "ImageNet-A"] is None  # missing, not unreproducible: empty
    assert cells["Linear probe", "ImageNet-V2"] == Stat(50.0, 0.0)
    [reason] = [n for n in section.notes if n.startswith("n/r")]
    assert reason.startswith("n/r: Linear probe on ImageNet-A, ImageNet-R: the official")
    lines = {line[0]: line[1:] for line in cells_of(render_board(board_of_2a(published)))}
    assert lines["Linear probe"][3:] == ["n/r", "n/r", "n/r"]


def board_of_2a(published: pd.DataFrame):
    recipe = BOOK.get("prograd-iccv2023/table2a")
    return board(frame(results(recipe, lambda c, e, s: 50.0)), recipe, published)


def test_rows_of_a_method_the_suite_lacks(published) -> None:
    """ProGrad's table 5 prints LwF at five alphas: rows with the paper's numbers, n/r
    where ours would be, and no Δ row."""
    recipe = BOOK.get("prograd-iccv2023/table5")
    df = frame(results(recipe, lambda c, e, s: 70.0))
    first, second = board(df, recipe, published).sections
    labels = [r.label for r in first.table.rows]
    assert "lwf (alpha=0.25)" in labels and "lwf (alpha=0.25) · paper" in labels
    assert "lwf (alpha=0.25) · Δ" not in labels
    cells = by_cell(first.table)
    assert cells["lwf (alpha=4)", "Average 16 shots"] == NotReproduced()
    assert cells["lwf (alpha=4) · paper", "Average 16 shots"] == Stat(65.42)
    # the per-dataset table has no published numbers: no LwF rows there
    assert not any(r.label.startswith("lwf") for r in second.table.rows)


# -- the command ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory, published) -> Path:
    folder = tmp_path_factory.mktemp("results")
    _, df = gcscoop_table1(published)
    table2a = BOOK.get("prograd-iccv2023/table2a")
    rows = df.drop(columns=["schema_version"]).to_dict("records")
    rows += (
        frame(results(table2a, lambda c, e, s: 50.0 + c.cell.seed))
        .drop(columns=["schema_version"])
        .to_dict("records")
    )
    store = ResultStore(folder)
    for run_id in sorted({r["run_id"] for r in rows}):
        store.write_run(run_id, [r for r in rows if r["run_id"] == run_id])
    return folder


RECIPE = ["--recipe", "gcscoop/table1", "--datasets", "oxford_pets,dtd"]


def test_cli_prints_the_table_marked(results_dir, capsys) -> None:
    assert main(["leaderboard", "--results", str(results_dir), *RECIPE]) == 0
    out = capsys.readouterr().out
    assert "## gcscoop/table1 · base_to_new (ViT-B-16, openai) · 16 shots · 3 seeds" in out
    assert "A Δ marked ! lies beyond the seed spread" in out
    lines = {line[0]: line[1:] for line in cells_of(out)}
    # GCSCoOp's OxfordPets Base: printed 95.43, ours 2.0 lower
    assert lines["GCSCoOp · paper"][3] == "95.43"
    assert lines["GCSCoOp"][3] == "93.4 ± 0.4"
    assert lines["GCSCoOp · Δ"][3] == "-2.0!"
    assert lines["CoOp · Δ"][3:6] == ["+0.3", "+0.3", "+0.3"]
    assert lines["SCoOp (best_rho) · Δ"][3] == "+1.5!"


def test_cli_write_check_and_html(results_dir, tmp_path, capsys) -> None:
    target = tmp_path / "table1.md"
    argv = ["leaderboard", "--results", str(results_dir), *RECIPE]
    assert main([*argv, "--write", str(target)]) == 0
    written = target.read_text()
    assert written.startswith(
        "<!-- Generated by `python -m benchmark leaderboard --results "
        f"{results_dir.as_posix()} --recipe gcscoop/table1 --datasets oxford_pets,dtd --write"
    )
    assert "| GCSCoOp · Δ" in written and "-2.0!" in written
    assert main([*argv, "--check", str(target)]) == 0
    assert (
        main(
            [
                "leaderboard",
                "--results",
                str(results_dir),
                "--recipe",
                "gcscoop/table1",
                "--check",
                str(target),
            ]
        )
        == 1
    )
    capsys.readouterr()
    page = tmp_path / "table2a.html"
    argv = ["leaderboard", "--results", str(results_dir), "--recipe", "prograd-iccv2023/table2a"]
    assert main([*argv, "--html", str(page)]) == 0
    cells = _html_cells(page.read_text())
    assert ("Linear probe", "n/r", "nr") in cells
    beyond = [c for c in cells if "beyond" in c[2]]
    assert beyond and all(c[0].endswith("· Δ") and c[1].endswith("!") for c in beyond)
    within = [c for c in cells if c[0].endswith("· Δ") and c[1] and "beyond" not in c[2]]
    assert all(not c[1].endswith("!") for c in within)


class _Cells(HTMLParser):
    """(row label, cell text, cell classes) of every value cell of a page's tables."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []
        self._row: list[tuple[str, str]] = []
        self._cell: list[str] | None = None
        self._css = ""

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "tr":
            self._row = []
        elif tag == "td":
            self._cell, self._css = [], dict(attrs).get("class") or ""

    def handle_data(self, data) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag) -> None:
        if tag == "td" and self._cell is not None:
            self._row.append(("".join(self._cell), self._css))
            self._cell = None
        elif tag == "tr" and self._row:
            label = self._row[0][0]
            self.found += [(label, text, css) for text, css in self._row[1:]]


def _html_cells(text: str) -> list[tuple[str, str, str]]:
    parser = _Cells()
    parser.feed(text)
    return parser.found


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seeds", "1"], "--seeds: only with --recipe NAME"),
        (["--recipe", "gcscoop/table1", "--protocol", "few_shot"], "--protocol: not with"),
        (["--recipe", "gcscoop/table1", "--average-h", "of-means"], "prints the papers' average"),
        (["--recipe", "gcscoop/table9"], "unknown recipe"),
        (["--recipe", "gcscoop/table4"], "not reproducible"),
        (["--recipe", "gcscoop/table1", "--seeds", "4"], "seeds 4: not in recipe"),
        (["--recipe", "prograd-iccv2023/table1"], "no runs of recipe prograd-iccv2023/table1"),
    ],
)
def test_cli_mistakes_are_one_line(results_dir, argv, message, capsys) -> None:
    assert main(["leaderboard", "--results", str(results_dir), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_delta_rows_are_the_only_marked(published) -> None:
    recipe, df = gcscoop_table1(published)
    table = board(df, recipe, published).sections[0].table
    marked = [
        r.kind for r in table.rows for c in r.cells if isinstance(c, Stat) and c.beyond_spread
    ]
    assert marked and set(marked) == {DELTA}
