"""Recipes: every published table has one (or a reason), each plans exactly its table's
matrix, shared cells have equal run ids, and ``run --recipe`` plans the cells asked for."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from benchmark import recipes
from benchmark.cli import build_parser, main
from benchmark.perf.recipe_cost import recipe_cost
from benchmark.planner import FewerShotsWarning
from benchmark.reference import AVERAGE, AVERAGED_OVER, PUBLISHED_PRETRAINED, load
from benchmark.registry import build_registry
from tests.conftest import TOY_DATASET, toy_request, write_coop_dataset

BOOK = recipes.load()
NAMES = BOOK.names()


@pytest.fixture(scope="module")
def registry():
    return build_registry(autoload=False)


@pytest.fixture(scope="module")
def published() -> pd.DataFrame:
    return load()


@pytest.fixture(scope="module")
def planned(registry) -> dict[str, list[recipes.RecipeCell]]:
    return {recipe.name: recipes.recipe_cells(registry, recipe) for recipe in BOOK.recipes}


def _rows(published: pd.DataFrame, recipe: recipes.Recipe) -> pd.DataFrame:
    of_table = (published["paper"] == recipe.paper) & (published["table"] == recipe.table)
    return published[of_table]


def test_every_published_table_has_a_recipe_or_a_reason(published):
    tables = set(zip(published["paper"], published["table"], strict=True))
    runnable = {(r.paper, r.table) for r in BOOK.recipes}
    explained = {(u.paper, u.table) for u in BOOK.unreproducible}
    assert tables == runnable | explained
    assert not runnable & explained
    assert all(u.reason.strip() for u in BOOK.unreproducible)
    assert len(NAMES) == len(runnable)  # one recipe per table


def _covered(row, cells: list[recipes.RecipeCell], recipe: recipes.Recipe) -> bool:
    """Whether some planned cell gives the published ``row``."""
    trained = AVERAGED_OVER[row.protocol] if row.dataset == AVERAGE else {row.dataset}
    evaluated = AVERAGED_OVER[row.protocol] if row.eval_dataset == AVERAGE else {row.eval_dataset}
    if not evaluated <= set(recipe.datasets):
        return False
    given = {
        c.cell.dataset
        for c in cells
        if c.variant == row.variant
        and c.cell.method == row.method
        and c.cell.protocol == row.protocol
        and (c.cell.shots == row.shots or (row.shots == 0 and row.method.startswith("zeroshot")))
    }
    return trained <= given


@pytest.mark.parametrize("name", NAMES)
def test_each_recipe_gives_the_published_rows_of_its_table(name, published, planned):
    recipe = BOOK.get(name)
    cells = planned[name]
    rows = _rows(published, recipe)
    rows = rows[rows["metric"] == "accuracy"]
    assert len(rows) > 0
    assert set(rows["backbone"]) == {recipe.backbone}
    assert recipe.pretrained == PUBLISHED_PRETRAINED
    explained = [False] * len(recipe.not_reproduced)
    for row in rows.itertuples():
        reasons = [
            i
            for i, n in enumerate(recipe.not_reproduced)
            if n.covers(row.method, row.variant, row.eval_dataset)
        ]
        for i in reasons:
            explained[i] = True
        if not reasons:
            assert _covered(row, cells, recipe), row
    assert all(explained), "a not_reproduced entry matches no published row"


@pytest.mark.parametrize("name", NAMES)
def test_each_recipe_runs_its_table_and_nothing_else(name, published, planned):
    """The shots, methods and ablations are the table's: no cell is planned that the table
    does not print."""
    recipe = BOOK.get(name)
    rows = _rows(published, recipe)
    rows = rows[rows["metric"] == "accuracy"]
    assert sorted(set(rows["shots"]) - {0}) == list(recipe.shots)
    assert set(recipe.seeds) == {1, 2, 3}
    assert {p.protocol for p in rows.itertuples()} == {recipe.protocol}
    printed = set(zip(rows["variant"], rows["method"], strict=True))
    runs = {(c.variant, c.cell.method) for c in planned[name]}
    assert runs <= printed
    not_run = printed - runs
    for variant, method in not_run:
        assert any(n.covers(method, variant, "") for n in recipe.not_reproduced), method


def test_recipe_names_are_paper_and_table():
    for recipe in BOOK.recipes:
        assert recipe.name == f"{recipe.paper}/table{recipe.table}"


def test_backbones_and_weights_are_open_clips():
    import open_clip

    for recipe in BOOK.recipes:
        assert (recipe.backbone, recipe.pretrained) in open_clip.list_pretrained(), recipe.name


def test_scoop_dagger_runs_the_radius_table4_printed(published, planned):
    """SCoOp† (variant best_rho) runs, per dataset, the rho of appendix table 4's SCoOp†
    column, and is the plain SCoOp run where that rho is SCoOp's own."""
    table4 = published[
        (published["paper"] == "gcscoop")
        & (published["table"] == "4")
        & (published["method"] == "scoop")
    ]
    best = table4[table4["variant"] == "best_rho"].set_index("dataset")["value"]
    own = table4[table4["variant"] == ""].set_index("dataset")["value"]
    cells = planned["gcscoop/table1"]
    dagger = {c.cell.dataset: c for c in cells if c.variant == "best_rho"}
    main = {c.key for c in cells if c.variant == "" and c.cell.method == "scoop"}
    assert set(dagger) == set(best.index) and len(best) == 11
    for dataset, cell in dagger.items():
        assert cell.cell.config.rho == pytest.approx(best[dataset])
        assert (cell.key in main) == (best[dataset] == own[dataset]), dataset


def _ids(cells, **where) -> set[tuple]:
    """The recorded keys of the cells matching ``where`` (equal keys: equal run ids)."""
    return {
        c.key
        for c in cells
        if all(getattr(c.cell if k != "variant" else c, k) == v for k, v in where.items())
    }


def test_recipe_cells_are_planned_without_data_and_without_run_ids(planned):
    """Run ids hold the data's fingerprints: without a data root there are none to give."""
    assert all(c.cell.run_id == "" for cells in planned.values() for c in cells)


def test_runs_shared_between_recipes_have_equal_keys(planned):
    table1, table5 = planned["prograd-iccv2023/table1"], planned["prograd-iccv2023/table5"]
    # table 5 prints table 1's CoOp and ProGrad rows: all its runs are table 1's
    assert _ids(table5) <= _ids(table1) and len(_ids(table5)) == 330
    # lambda 1.0 is ProGrad's own value on OxfordPets at every shot count ...
    pets = _ids(planned["prograd-iccv2023/table7a"], variant="lambda=1.0")
    assert pets == _ids(table1, method="prograd", dataset="oxford_pets")
    # ... and on DTD below 8 shots; at 8 and 16 shots ProGrad runs lambda 0.8 on DTD
    dtd = planned["prograd-iccv2023/table7b"]
    for shots, shared in ((1, True), (4, True), (8, False), (16, False)):
        ablation = _ids(dtd, variant="lambda=1.0", shots=shots)
        main = _ids(table1, method="prograd", dataset="dtd", shots=shots)
        assert len(ablation) == 3 and (ablation == main) is shared, shots
    # other lambdas are other runs
    assert not _ids(planned["prograd-iccv2023/table7a"], variant="lambda=0.2") & _ids(table1)


def test_one_backbone_per_table2_recipe_and_distinct_runs(planned):
    names = [f"prograd-iccv2023/table2{x}" for x in "abcd"]
    ids = [{(BOOK.get(name).backbone, key) for key in _ids(planned[name])} for name in names]
    assert all(len(i) == 15 for i in ids)  # 5 methods x 1 shot count x 3 seeds
    assert len(set().union(*ids)) == 60


# -- run --recipe on a fixture data root ------------------------------------------------------

CLASSES = ("abyssinian", "beagle", "boxer", "pug")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """OxfordPets and DTD in CoOp's layout (images/ and their split files), nothing else."""
    root = tmp_path_factory.mktemp("coop")
    for folder, split_file in (
        ("oxford_pets", "split_zhou_OxfordPets.json"),
        ("dtd", "split_zhou_DescribableTextures.json"),
    ):
        base = write_coop_dataset(root, folder, CLASSES, per_split=(2, 1, 1))
        (base / f"split_zhou_{folder}.json").rename(base / split_file)
    return root


def _runner(registry, argv: list[str]):
    from benchmark.cli.run import recipe_runner

    args = build_parser().parse_args(["run", *argv])
    return recipe_runner(args, registry, progress=lambda message: None)


def test_run_recipe_plans_the_table_on_the_datasets_asked_for(registry, data_root, tmp_path):
    runner = _runner(
        registry,
        [
            "--recipe",
            "gcscoop/table1",
            "--data-root",
            str(data_root),
            "--datasets",
            "oxford_pets,dtd",
            "--seeds",
            "1,2",
            "--results",
            str(tmp_path),
            "--device",
            "cpu",
        ],
    )
    request = runner.request
    assert (request.backbone.name, request.backbone.weights) == ("ViT-B-16", "openai")
    assert (request.preset, request.protocols, request.data_root) == (
        "gcscoop",
        ["base_to_new"],
        data_root,
    )
    with pytest.warns(FewerShotsWarning, match="fewer than 16 training images"):
        groups = runner.plan()  # the fixture has 2 training images per class
    cells = [cell for group in groups for cell in group]
    methods = ("zeroshot", "coop", "cocoop", "prograd", "kgcoop", "scoop", "gcscoop")
    expected = {(m, d, 16, s) for m in methods for d in ("oxford_pets", "dtd") for s in (1, 2)}
    dagger = {("scoop", d, 16, s) for d in ("oxford_pets", "dtd") for s in (1, 2)}
    got = [(c.method, c.dataset, c.shots, c.seed) for c in cells]
    assert len(got) == len(expected) + len(dagger) == len({c.run_id for c in cells})
    assert set(got) == expected  # SCoOp† is SCoOp with another rho: the same cells' keys
    rho = {(c.dataset, c.seed, c.config.rho) for c in cells if c.method == "scoop"}
    # SCoOp's own rho (0.1 on Pets, 0.3 on DTD) and SCoOp†'s (0.05 and 0.13)
    assert rho == {
        (d, s, r)
        for d, rs in (("oxford_pets", (0.1, 0.05)), ("dtd", (0.3, 0.13)))
        for s in (1, 2)
        for r in rs
    }
    assert all(len(g) == 2 and {c.seed for c in g} == {1, 2} for g in groups)


def test_runs_shared_between_recipes_have_equal_run_ids_on_the_data(registry, data_root, tmp_path):
    """Planned with the data, table 7b's lambda 1.0 at 1 shot is table 1's ProGrad on DTD:
    the same run ids; lambda 0.2 is another run."""

    def ids(recipe: str, *extra: str) -> dict[str, set[str]]:
        argv = ["--recipe", recipe, "--data-root", str(data_root), "--datasets", "dtd"]
        argv += ["--shots", "1", "--results", str(tmp_path), "--device", "cpu", *extra]
        runner = _runner(registry, argv)
        found: dict[str, set[str]] = {}
        for part, groups in recipes.plan_recipe(
            registry, runner.recipe, runner.request, runner.catalog
        ):
            found.setdefault(part.variant, set()).update(c.run_id for g in groups for c in g)
        return found

    table1 = ids("prograd-iccv2023/table1", "--methods", "prograd")[""]
    table7b = ids("prograd-iccv2023/table7b")
    assert len(table1) == 3 and all(table1)
    assert table7b["lambda=1.0"] == table1
    assert not table7b["lambda=0.2"] & table1


def test_run_recipe_narrowed_by_methods_and_shots(registry, data_root, tmp_path):
    runner = _runner(
        registry,
        [
            "--recipe",
            "prograd-iccv2023/table7b",
            "--data-root",
            str(data_root),
            "--shots",
            "1,16",
            "--results",
            str(tmp_path),
            "--device",
            "cpu",
        ],
    )
    with pytest.warns(FewerShotsWarning, match=r"'dtd' \(few_shot, 16 shots\)"):
        cells = [cell for group in runner.plan() for cell in group]
    assert {(c.method, c.dataset, c.shots) for c in cells} == {
        ("prograd", "dtd", 1),
        ("prograd", "dtd", 16),
    }
    lambdas = sorted({c.config.lambda_ for c in cells})
    assert lambdas == [0.0, 0.2, 0.4, 0.7, 0.9, 1.0]
    assert len(cells) == 6 * 2 * 3  # lambdas x shot counts x seeds
    assert runner.request.backbone.name == "RN50"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--backbone", "ViT-B-16"], "recipe prograd-iccv2023/table1 runs backbone RN50"),
        (["--preset", "reference"], "runs preset prograd-iccv2023"),
        (["--pretrained", "laion2b_s34b_b79k"], "runs pretrained openai"),
        (["--protocols", "base_to_new"], "runs protocols few_shot"),
        (["--set", "coop.epochs=1"], "--set: recipe prograd-iccv2023/table1 runs the"),
        (["--checkpoint", "w.pt"], "runs the openai weights of RN50"),
        (["--methods", "kgcoop"], "methods kgcoop: not in recipe prograd-iccv2023/table1"),
        (["--datasets", "imagenet_r"], "datasets imagenet_r: not in recipe"),
        (["--seeds", "4"], "seeds 4: not in recipe"),
        (["--shots", "3"], "shots 3: not in recipe"),
    ],
)
def test_options_that_change_a_recipe_are_refused(extra, message, data_root, tmp_path, capsys):
    argv = ["run", "--recipe", "prograd-iccv2023/table1", "--data-root", str(data_root)]
    assert main([*argv, *extra, "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--recipe", "prograd-iccv2023/table9"], "unknown recipe"),
        (["--recipe", "prograd-iccv2023/table6"], "not reproducible: it fine-tunes"),
        (["--recipe", "gcscoop/table4"], "not reproducible: its numbers are hyperparameters"),
        (["--recipe", "gcscoop/table1"], "needs --data-root DIR"),
    ],
)
def test_recipe_mistakes_are_one_line(argv, message, tmp_path, capsys):
    assert main(["run", *argv, "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_recipe_runs_its_ablations_and_reuses_runs_already_done(
    toy_registry, tiny_backbone, tmp_path
):
    """The recipe runner trains every part with its own settings, skips what is done, and a
    plain run of the same configuration finds the recipe's runs (equal run ids)."""
    from benchmark.runner import Runner

    recipe = recipes.Recipe(
        name="toy/table1",
        paper="toy",
        table="1",
        title="CoOp's epochs on the toy source",
        source="this test",
        protocol="few_shot",
        datasets=(TOY_DATASET,),
        shots=(2,),
        seeds=(1, 2),
        backbone=tiny_backbone.name,
        pretrained=tiny_backbone.weights,
        preset="quick",
        parts=(
            recipes.Part(recipes.MAIN, ("zeroshot",)),
            recipes.Part("epochs=1", ("coop",), ("coop.epochs=1",)),
            recipes.Part("epochs=2", ("coop",), ("coop.epochs=2",)),
        ),
    )
    request = toy_request(tiny_backbone, tmp_path, methods=list(recipe.methods))
    summary = recipes.RecipeRunner(toy_registry, recipe, request, lambda m: None).run()
    assert (summary.planned, summary.succeeded, summary.failed) == (6, 6, [])
    table = pd.read_parquet(tmp_path / "results" / "runs")
    coop = table[table.method == "coop"]
    assert sorted(json.loads(c)["epochs"] for c in coop.config) == [1, 1, 2, 2]
    again = recipes.RecipeRunner(toy_registry, recipe, request, lambda m: None).run()
    assert (again.skipped, again.succeeded) == (6, 0)
    plain = toy_request(
        tiny_backbone, tmp_path, methods=["coop"], overrides={"coop": {"epochs": "2"}}
    )
    reused = Runner(toy_registry, plain, progress=lambda m: None).run()
    assert (reused.skipped, reused.succeeded) == (2, 0)


# -- recipes: the listing ---------------------------------------------------------------------


def test_recipes_lists_every_table_with_runs_and_missing_datasets(data_root, capsys):
    assert main(["recipes", "--data-root", str(data_root), "--format", "json"]) == 0
    described = json.loads(capsys.readouterr().out)
    listed = {r["name"]: r for r in described["recipes"]}
    assert list(listed) == NAMES
    assert {(u["paper"], u["table"]) for u in described["not_reproducible"]} == {
        ("prograd-iccv2023", "6"),
        ("gcscoop", "4"),
    }
    assert listed["prograd-iccv2023/table1"]["runs"] == 6 * 11 * 5 * 3
    assert listed["gcscoop/table1"]["runs"] == (7 * 11 + 9) * 3  # SCoOp† runs 2 rhos anew
    status = listed["prograd-iccv2023/table7b"]["datasets_status"]
    assert status["dtd"]["state"] == "problems"  # found; 4 classes, not DTD's 47
    imagenet = listed["gcscoop/table2"]["datasets_status"]["imagenet"]
    assert imagenet["state"] == "missing"
    assert str(data_root / "imagenet") in imagenet["details"][0]
    assert "images/train/<wnid>/" in imagenet["details"][0]
    assert all(r["device_hours_estimate"] is None for r in listed.values())
    assert listed["gcscoop/table1"]["no_estimate_because"] == "no bench report of ViT-B-16"


def test_recipes_text_says_what_the_hours_need(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in NAMES:
        assert name in out
    assert "Device hours are estimates" in out
    assert "No estimate without a bench report of the recipe's backbone" in out
    assert "prograd-iccv2023/table6: it fine-tunes a cosine classifier" in out
    assert "give --data-root DIR" in out


def _report(backbone: str, ms: float, images_per_s: float) -> dict:
    rows = [
        {
            "method": m,
            "classes": k,
            "batch": 32,
            "ours_ms": ms,
            "reference_ms": ms,
            "image_passes": 1,
        }
        for m in ("coop", "cocoop", "prograd", "kgcoop", "gcscoop")
        for k in (10, 100)
    ]
    return {
        "device": "test",
        "backbone": backbone,
        "rows": rows,
        "reference_image_ms": {"1": 1.0, "32": 1.0},
        "extraction_images_per_s": images_per_s,
    }


def test_the_estimate_is_steps_times_step_time_plus_extraction(planned):
    cells = recipes.unique_cells(planned["prograd-iccv2023/table7a"])
    recipe = BOOK.get("prograd-iccv2023/table7a")
    # ProGrad on OxfordPets (37 classes, batch 32): 1 shot 1 step x 50 epochs, 2 shots 2 x 100,
    # 4 shots 4 x 100, 8 shots 9 x 200, 16 shots 18 x 200; 6 lambdas x 3 seeds
    steps = (1 * 50 + 2 * 100 + 4 * 100 + 9 * 200 + 18 * 200) * 6 * 3
    free = recipe_cost(cells, recipe.datasets, "RN50", ("r", _report("RN50", 1.0, 1e30)))
    assert free.run_steps == steps and free.runs == 90
    assert free.hours == pytest.approx(steps * 1.0 / 3.6e6)
    slower = recipe_cost(cells, recipe.datasets, "RN50", ("r", _report("RN50", 3.0, 1e30)))
    assert slower.hours == pytest.approx(3 * free.hours)
    # extraction: 3669 test images; each seed's draws (37 x 31 images) in 200 training views
    # of its own; every distinct training image (3 x 37 x 31, more than the 2944 of the
    # train split: all of them) in the test view
    per_seed = 37 * (1 + 2 + 4 + 8 + 16)
    encoded = 3669 + 3 * per_seed * 200 + min(2944, 3 * per_seed)
    extracting = recipe_cost(cells, recipe.datasets, "RN50", ("r", _report("RN50", 0.0, 100.0)))
    assert extracting.encoded_images == encoded
    assert extracting.hours == pytest.approx(encoded / 100 / 3600)
    none = recipe_cost(cells, recipe.datasets, "RN50")
    assert none.hours is None and none.missing == "no bench report of RN50"
    with pytest.raises(ValueError, match="not RN50"):
        recipe_cost(cells, recipe.datasets, "RN50", ("r", _report("ViT-B-16", 1.0, 1.0)))


def test_recipes_with_bench_reports_print_hours(tmp_path, capsys):
    path = tmp_path / "rn50.json"
    path.write_text(json.dumps(_report("RN50", 10.0, 1000.0)))
    assert main(["recipes", "--bench", str(path), "--format", "json"]) == 0
    listed = {r["name"]: r for r in json.loads(capsys.readouterr().out)["recipes"]}
    table1 = listed["prograd-iccv2023/table1"]
    assert table1["estimated_from"] == f"{path} (test)"
    assert table1["device_hours_estimate"] > table1["training_steps"] * 10 / 3.6e6
    assert listed["gcscoop/table1"]["device_hours_estimate"] is None
    assert main(["recipes", "--bench", str(path)]) == 0
    assert "Estimated from the bench reports" in capsys.readouterr().out


def test_the_readme_gives_one_command_per_recipe():
    words = " ".join((Path(__file__).parent.parent / "README.md").read_text().split())
    for name in NAMES:
        assert f"python -m benchmark run --recipe {name} --data-root" in words, name


def test_the_hours_note_names_only_the_recipes_without_an_estimate():
    from benchmark.cli.recipes import _hours_note

    def recipe(name, estimated_from, why=None):
        return {
            "name": name,
            "backbone": "ViT-B-16",
            "estimated_from": estimated_from,
            "no_estimate_because": why,
        }

    described = {
        "recipes": [
            recipe("a", "vit.json (cuda)"),
            recipe("c", None, "the report has no step times of cocoop"),
        ],
        "estimate_assumptions": ["an assumption"],
    }
    missing = [line for line in _hours_note(described) if line.startswith("No estimate for")]
    assert missing == ["No estimate for c: the report has no step times of cocoop."]
