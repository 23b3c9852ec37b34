"""Users' own datasets through ``run --dataset``: every protocol, end to end on the CLI."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.datasets.imagefolder import parse_dataset_option, parse_dataset_options
from benchmark.errors import DataError, UserError
from benchmark.miniworld.model import CHECKPOINT, MODEL_NAME
from tests.conftest import write_imagefolder

SHAPES = ("red square", "green circle", "blue triangle", "yellow cross", "white ring")
SIGNS = ("stop sign", "yield sign", "speed limit")

#: The mini world's tiny CLIP on the CPU: the backbone of every CLI run in these tests.
TINY = ["--backbone", MODEL_NAME, "--checkpoint", str(CHECKPOINT), "--device", "cpu"]


def run_cli(tmp_path, *argv: str) -> int:
    return main(
        [
            "run",
            *argv,
            *TINY,
            "--results",
            str(tmp_path / "results"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-leaderboard",
        ]
    )


def write_coop_split(root):
    """A user split file in CoOp's format, images relative to its folder."""
    tree = write_imagefolder(root / "images", SIGNS, per_split=(2, 1, 1), seed=3)
    content = {}
    for split in ("train", "val", "test"):
        content[split] = [
            [str(path.relative_to(root)), SIGNS.index(path.parent.name.replace("_", " ")),
             path.parent.name]
            for path in sorted((tree / split).rglob("*.png"))
        ]  # fmt: skip
    path = root / "split.json"
    path.write_text(json.dumps(content))
    return path


def test_every_protocol_runs_on_user_datasets(tmp_path, capsys):
    shapes = write_imagefolder(tmp_path / "shapes", SHAPES, per_split=(2, 1, 2))
    signs = write_coop_split(tmp_path / "signs")
    drawn = write_imagefolder(tmp_path / "drawn", SHAPES[1:4], per_split=(0, 0, 1), seed=5)
    code = run_cli(
        tmp_path,
        "--dataset",
        f"shapes={shapes}",
        "--dataset",
        f"signs={signs}:a road sign, {{}}.",
        "--dataset",
        f"drawn@shapes={drawn}",
        "--methods",
        "zeroshot,coop",
        "--shots",
        "1",
        "--seeds",
        "1",
        "--set",
        "coop.epochs=1",
    )
    assert code == 0, capsys.readouterr().err
    table = pd.read_parquet(tmp_path / "results" / "runs")
    assert (table.status == "ok").all()
    accuracy = table[table.metric == "accuracy"]
    columns = ["method", "protocol", "dataset", "eval_dataset"]
    cells = set(accuracy[columns].itertuples(index=False, name=None))
    for method in ("zeroshot", "coop"):
        assert {
            (method, "few_shot", "shapes", "shapes"),
            (method, "few_shot", "signs", "signs"),
            (method, "base_to_new", "shapes", "shapes"),
            (method, "base_to_new", "signs", "signs"),
            # the first --dataset is the source, the others its targets
            (method, "cross_dataset", "shapes", "shapes"),
            (method, "cross_dataset", "shapes", "signs"),
            (method, "domain_generalization", "shapes", "shapes"),
            (method, "domain_generalization", "shapes", "drawn"),  # drawn@shapes: a shift
        } == {c for c in cells if c[0] == method}
    b2n = accuracy[(accuracy.protocol == "base_to_new") & (accuracy.dataset == "shapes")]
    assert set(b2n.split) == {"base", "new", "hm"}
    # 5 classes: base = the first 3 sorted names, new = the other 2, 2 test images each
    n_eval = dict(zip(b2n.split, b2n.n_eval, strict=True))
    assert (n_eval["base"], n_eval["new"]) == (6, 4)
    few = accuracy[(accuracy.protocol == "few_shot") & (accuracy.dataset == "signs")]
    assert set(few.n_eval) == {3}  # one test image per class of the split file


def test_template_suffix_and_roles(tmp_path):
    tree = write_imagefolder(tmp_path / "t", SHAPES[:2], per_split=(1, 0, 1))
    split = write_coop_split(tmp_path / "s")
    spec = parse_dataset_option(f"mine={tree}:a drawing of a {{}}.")
    assert (spec.template, spec.folder) == ("a drawing of a {}.", str(tree))
    assert parse_dataset_option(f"mine={tree}").template == "a photo of a {}."
    spec = parse_dataset_option(f"s={split}:{tmp_path / 's'}:itap of a {{}}.")
    assert spec.template == "itap of a {}."
    first, second = parse_dataset_options([f"a={tree}", f"b={split}"])
    assert (first.role, second.role) == ("source", "target")
    shift, first, second = parse_dataset_options([f"s@b={tree}", f"a={tree}", f"b={split}"])
    assert (shift.role, shift.source, first.role, second.role) == ("shift", "b", "source", "target")
    with pytest.raises(UserError, match="unknown source dataset 'c'"):
        parse_dataset_options([f"s@c={tree}", f"a={tree}"])
    with pytest.raises(DataError, match="expected NAME=PATH"):
        parse_dataset_option("x=:a photo of a {}.")


@pytest.mark.parametrize(
    ("option", "code", "message"),
    [
        ("nothing", 3, "expected NAME=PATH"),
        ("x=/no/such/folder", 3, "is not a directory"),
        ("x=/no/such/split.json", 3, "split file not found"),
        ("mini_shapes={tree}", 2, "--dataset mini_shapes=...: mini_world (vlprompt-bench) already"),
    ],
)
def test_bad_dataset_options_get_one_line(tmp_path, capsys, option, code, message):
    tree = write_imagefolder(tmp_path / "t", SHAPES[:2], per_split=(1, 0, 1))
    assert run_cli(tmp_path, "--dataset", option.format(tree=tree)) == code
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_named_preset_is_selected_on_the_command_line(tmp_path, capsys):
    shapes = write_imagefolder(tmp_path / "shapes", SHAPES[:3], per_split=(1, 0, 1))
    argv = ["--dataset", f"shapes={shapes}", "--protocols", "few_shot", "--shots", "1"]
    assert run_cli(tmp_path, *argv, "--methods", "zeroshot:ensemble", "--seeds", "1") == 0
    table = pd.read_parquet(tmp_path / "results" / "runs")
    assert table.method.unique().tolist() == ["zeroshot:ensemble"]
    assert json.loads(table.config.iloc[0]) == {"ensemble": True}


def _planned(capsys) -> str:
    return next(line for line in capsys.readouterr().err.splitlines() if "runs planned" in line)


def test_changed_data_or_weights_behind_an_old_name_are_new_runs(tmp_path, capsys):
    import os
    import shutil

    from safetensors.torch import load_file, save_file

    shapes = write_imagefolder(tmp_path / "shapes", SHAPES[:3], per_split=(1, 0, 1))
    signs = write_coop_split(tmp_path / "signs")
    weights = tmp_path / "weights.safetensors"
    shutil.copy(CHECKPOINT, weights)
    argv = ["--methods", "zeroshot", "--protocols", "few_shot", "--shots", "1", "--seeds", "1"]
    argv += ["--dataset", f"shapes={shapes}", "--dataset", f"signs={signs}"]
    argv += ["--backbone", MODEL_NAME, "--checkpoint", str(weights), "--device", "cpu"]
    argv += ["--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache")]

    def planned() -> str:
        assert main(["run", *argv, "--no-leaderboard"]) == 0
        return _planned(capsys)

    assert planned() == "2 runs planned, 0 already done, 2 to run"
    assert planned() == "2 runs planned, 2 already done, 0 to run"
    # an image of the ImageFolder replaced by another of the same name
    image = next((shapes / "test").rglob("*.png"))
    image.write_bytes(next((shapes / "train").rglob("*.png")).read_bytes())
    assert planned() == "2 runs planned, 1 already done, 1 to run"
    # the split file changed (one test image fewer)
    content = json.loads(signs.read_text())
    content["test"] = content["test"][1:] + content["test"][:1]
    signs.write_text(json.dumps(content))
    assert planned() == "2 runs planned, 1 already done, 1 to run"
    # other weights behind the same file name
    state = load_file(str(weights))
    key = sorted(state)[0]
    state[key] = state[key] * 0.5
    save_file(state, str(weights))
    assert planned() == "2 runs planned, 0 already done, 2 to run"
    # another template for the same images
    argv[argv.index(f"shapes={shapes}")] = f"shapes={shapes}:a drawing of a {{}}."
    assert planned() == "2 runs planned, 1 already done, 1 to run"
    # touching a file without changing anything leaves the split-file dataset's runs done
    os.utime(signs)
    assert planned() == "2 runs planned, 2 already done, 0 to run"
