"""Artifacts: every trained run's learned tensors saved, evaluated again, read as words."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load, save

from benchmark import artifacts
from benchmark.cli import main
from benchmark.evaluation import EvalRequest, evaluate
from benchmark.runner import Runner
from tests.conftest import (
    TINY_MODEL,
    TOY_CLASSES,
    TOY_DATASET,
    ToyDatasets,
    register_tiny_model,
    toy_request,
)

TRAINED = ("coop", "coop:csc", "cocoop", "linear_probe")


def quiet(message: str) -> None:
    pass


@pytest.fixture(scope="module")
def trained_once(toy_root, tiny_checkpoint, tmp_path_factory) -> Path:
    """A folder with the results and cache of few-shot runs of every kind of learned state
    (and of zero-shot, which learns nothing) on the toy dataset, trained once per module."""
    from benchmark.backbone import BackboneSpec
    from benchmark.registry import build_registry

    register_tiny_model()
    folder = tmp_path_factory.mktemp("trained")
    backbone = BackboneSpec(TINY_MODEL, None, tiny_checkpoint)
    short = {"coop": {"epochs": "2"}, "linear_probe": {"C": "1", "max_iter": "50"}}
    methods = ["zeroshot", *TRAINED]
    request = toy_request(backbone, folder, methods=methods, seeds=[1], shots=[2], overrides=short)
    registry = build_registry(autoload=False, extra_plugins=[ToyDatasets(toy_root)])
    summary = Runner(registry, request, progress=quiet).run()
    assert summary.failed == []
    return folder


@pytest.fixture
def trained(trained_once, tmp_path) -> pd.DataFrame:
    """The runs of :func:`trained_once`, their results copied to ``tmp_path / "results"``
    (the cache stays shared); their result table."""
    shutil.copytree(trained_once / "results", tmp_path / "results")
    (tmp_path / "cache").symlink_to(trained_once / "cache")
    return pd.read_parquet(tmp_path / "results" / "runs")


def accuracy_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table[table.metric == "accuracy"].set_index("method")


def test_every_trained_run_saves_an_artifact_that_loads(trained, tiny_backbone, tmp_path):
    rows = accuracy_rows(trained)
    assert rows.loc["zeroshot", "artifact"] == ""  # nothing learned, nothing saved
    for method in TRAINED:
        row = rows.loc[method]
        assert row.artifact == f"artifacts/{row.run_id}.safetensors"
        artifact = artifacts.load(tmp_path / "results" / row.artifact)
        provenance = artifact.provenance
        assert (provenance.run_id, provenance.method, provenance.dataset) == (
            row.run_id,
            method,
            TOY_DATASET,
        )
        assert provenance.classes == TOY_CLASSES
        assert json.loads(provenance.config) == json.loads(row.config)
        assert provenance.checkpoint == str(tiny_backbone.checkpoint.resolve())
    saved = {m: artifacts.load(tmp_path / "results" / rows.loc[m, "artifact"]) for m in TRAINED}
    assert saved["coop"].state.tensors["ctx"].dim() == 2
    assert saved["coop:csc"].state.tensors["ctx"].shape[0] == len(TOY_CLASSES)
    assert {"ctx", "meta_net.w1"} <= set(saved["cocoop"].state.tensors)
    assert saved["linear_probe"].state.tensors["weight"].dtype == torch.float64
    assert not list((tmp_path / "results" / "artifacts").glob(".*"))  # no temporary files


def test_eval_reproduces_the_recorded_accuracy_and_scores_new_classes(
    trained, toy_registry, tmp_path
):
    rows = accuracy_rows(trained)
    request = EvalRequest([TOY_DATASET, "toy_target"], tmp_path / "results", tmp_path / "cache")
    for method in TRAINED:
        artifact = artifacts.load(tmp_path / "results" / rows.loc[method, "artifact"])
        summary = evaluate(toy_registry, artifact, request, quiet)
        # context of one shared kind rebuilds its prompts for new classes; a probe or a
        # context per class scores only the classes it was trained on
        new_classes = method in ("coop", "cocoop")
        assert summary.unscorable == ([] if new_classes else ["toy_target"])
        again = evaluate(toy_registry, artifact, request, quiet)
        assert (again.written, again.rows) == ([], 0)
    table = pd.read_parquet(tmp_path / "results" / "runs")
    evaluated = table[table.protocol == "eval"]
    assert len(evaluated) == len(TRAINED) + 2
    on_source = evaluated[evaluated.eval_dataset == TOY_DATASET].set_index("method")
    for method in TRAINED:
        assert on_source.loc[method, "value"] == rows.loc[method, "value"]  # exactly
        assert on_source.loc[method, "artifact"] == rows.loc[method, "artifact"]
        assert on_source.loc[method, "dataset"] == TOY_DATASET
    assert set(evaluated[evaluated.eval_dataset == "toy_target"].method) == {"coop", "cocoop"}


def test_no_artifacts_saves_nothing(toy_registry, tiny_backbone, tmp_path):
    request = toy_request(
        tiny_backbone,
        tmp_path,
        methods=["coop"],
        seeds=[1],
        overrides={"coop": {"epochs": "1"}},
        artifacts=False,
    )
    Runner(toy_registry, request, progress=quiet).run()
    table = pd.read_parquet(tmp_path / "results" / "runs")
    assert (table.artifact == "").all()
    assert not (tmp_path / "results" / "artifacts").exists()


def initial_artifact(engine, results: Path, run_id: str = "0123456789abcdef0123") -> Path:
    """The artifact of a CoOp context as initialised from "a photo of a", before training."""
    from vlprompt_methods.coop import METHOD, Config

    from benchmark.planner import Cell
    from benchmark.prompting.classifier import PromptClassifier
    from benchmark.prompting.context import initial_context
    from benchmark.protocol import Classes
    from benchmark.registry import Provider

    init = initial_context(engine.tower, "a photo of a", 4, [1])
    classes = Classes(TOY_DATASET, TOY_CLASSES, "a photo of a {}.")
    classifier = PromptClassifier(engine, init.ctx[0], init.lead, {}, classes)
    config = Config(n_ctx=4, ctx_init="a photo of a")
    cell = Cell("coop", "few_shot", TOY_DATASET, 2, 1, config, run_id)
    provider = Provider("vlprompt_methods", "vlprompt-bench", "0")
    provenance = artifacts.provenance_of(cell, METHOD, engine.backbone, classes, provider)
    return artifacts.write(results, run_id, artifacts.serialise(classifier, provenance))


def test_inspect_reads_an_initial_context_as_its_words(tiny_engine, tmp_path, capsys):
    path = initial_artifact(tiny_engine, tmp_path / "results")
    args = ["inspect", path.stem, "--results", str(tmp_path / "results"), "--top", "3"]
    assert main([*args, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (context,) = report["contexts"]
    nearest = [vector["nearest"][0] for vector in context["vectors"]]
    assert [n["word"] for n in nearest] == ["a", "photo", "of", "a"]
    assert [n["token"] for n in nearest] == ["a</w>", "photo</w>", "of</w>", "a</w>"]
    assert all(n["distance"] < 1e-5 for n in nearest)
    assert all(len(vector["nearest"]) == 3 for vector in context["vectors"])
    distances = [n["distance"] for n in context["vectors"][1]["nearest"]]
    assert distances == sorted(distances)
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "  2: photo (0.0000), " in text


def test_inspect_reads_cocoop_context_without_the_meta_net(trained, tmp_path, capsys):
    rows = accuracy_rows(trained)
    run_id = rows.loc["cocoop", "run_id"]
    assert main(["inspect", run_id[:8], "--results", str(tmp_path / "results")]) == 0
    text = capsys.readouterr().out
    assert "ctx: the 5 nearest tokens" in text
    assert "not read (not in the token-embedding space): meta_net.b1" in text


def test_inspect_of_a_linear_probe_says_there_is_no_context(trained, tmp_path, capsys):
    run_id = accuracy_rows(trained).loc["linear_probe", "run_id"]
    assert main(["inspect", run_id, "--results", str(tmp_path / "results")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:] == [
        "no context vectors in the token-embedding space to read",
        "not read (not in the token-embedding space): bias, weight",
    ]


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "garbage":
        path.write_bytes(b"not a safetensors file at all")
    elif how == "truncated":
        path.write_bytes(data[: len(data) - 7])
    elif how == "foreign":
        path.write_bytes(save({"ctx": torch.zeros(4, 32)}))
    else:
        header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
        tensors, metadata = load(data), header["__metadata__"]
        if how == "missing tensor":
            del tensors["meta_net.w2"]
        elif how == "other dtype":
            tensors["ctx"] = tensors["ctx"].half()
        elif how == "NaN":
            tensors["meta_net.w2"][0, 0] = float("nan")
        else:  # saved by a classifier its method does not rebuild
            metadata["classifier"] = "my_plugin.ConditionalClassifier"
        path.write_bytes(save(tensors, metadata))


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("garbage", "not a readable safetensors file"),
        ("truncated", "not a readable safetensors file"),
        ("foreign", "its metadata does not say format 'vlprompt-bench artifact'"),
        ("missing tensor", "cocoop: no tensor 'meta_net.w2'"),
        ("other dtype", "cocoop: tensor 'ctx' is torch.float16, expected torch.float32"),
        ("NaN", "tensor 'meta_net.w2' holds NaN or infinite values"),
        ("other classifier", "saved by a my_plugin.ConditionalClassifier, and method cocoop"),
    ],
)
def test_a_damaged_or_foreign_artifact_is_one_line_and_exit_4(
    trained, tmp_path, capsys, how, message
):
    run_id = accuracy_rows(trained).loc["cocoop", "run_id"]
    path = tmp_path / "results" / artifacts.relative_path(run_id)
    damage(path, how)
    results = ["--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache")]
    assert main(["eval", run_id, *results, "--device", "cpu"]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and message in err


def test_an_artifact_of_another_backbone_is_refused(trained, tmp_path, capsys):
    import open_clip
    from safetensors.torch import save_file

    run_id = accuracy_rows(trained).loc["coop", "run_id"]
    other = tmp_path / "other.safetensors"
    torch.manual_seed(1)
    model = open_clip.create_model(TINY_MODEL, pretrained=None)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(other))
    args = ["inspect", run_id, "--results", str(tmp_path / "results")]
    assert main([*args, "--checkpoint", str(other)]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "a learned prompt belongs to the backbone it was trained with" in err
    assert main(["eval", "ffff", "--results", str(tmp_path / "results")]) == 2
    assert "no artifact of run 'ffff'" in capsys.readouterr().err


def test_eval_on_imagefolder_datasets_from_the_command_line(tiny_backbone, tmp_path, capsys):
    from tests.conftest import write_imagefolder

    shapes = write_imagefolder(tmp_path / "shapes", TOY_CLASSES, per_split=(1, 0, 2))
    drawn = write_imagefolder(tmp_path / "drawn", TOY_CLASSES[:3], per_split=(0, 0, 2), seed=5)
    backbone = ["--backbone", TINY_MODEL, "--checkpoint", str(tiny_backbone.checkpoint)]
    folders = ["--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache")]
    few_shot = ["--protocols", "few_shot", "--shots", "1", "--seeds", "1", "--no-leaderboard"]
    args = ["--dataset", f"shapes={shapes}", "--methods", "coop", "--set", "coop.epochs=1"]
    assert main(["run", *args, *few_shot, *backbone, *folders, "--device", "cpu"]) == 0
    trained = pd.read_parquet(tmp_path / "results" / "runs").iloc[0]
    datasets = ["--dataset", f"shapes={shapes}", "--dataset", f"drawn={drawn}"]
    assert main(["eval", trained.run_id, *datasets, *folders, "--device", "cpu"]) == 0
    table = pd.read_parquet(tmp_path / "results" / "runs")
    evaluated = table[table.protocol == "eval"].set_index("eval_dataset")
    assert evaluated.loc["shapes", "value"] == trained.value
    assert evaluated.loc["drawn", "n_eval"] == 6
    assert (evaluated.artifact == trained.artifact).all()
    capsys.readouterr()
    assert main(["eval", trained.run_id, *datasets, *folders, "--device", "cpu"]) == 0
    assert "datasets evaluated: 0, already done: 2" in capsys.readouterr().err  # nothing new
    assert len(list((tmp_path / "results" / "runs").glob("*.parquet"))) == 3


def test_a_moved_weights_file_is_given_again_and_recognised_by_its_content(
    tiny_checkpoint, tmp_path, capsys
):
    from benchmark.backbone import Backbone, BackboneSpec
    from benchmark.engine import Engine
    from benchmark.features import FeatureCache

    weights = tmp_path / "weights.safetensors"
    shutil.copy(tiny_checkpoint, weights)
    backbone = Backbone(BackboneSpec(TINY_MODEL, None, weights))
    path = initial_artifact(Engine(backbone, FeatureCache(tmp_path, backbone)), tmp_path)
    weights.unlink()
    args = ["inspect", path.stem, "--results", str(tmp_path)]
    assert main(args) == 4
    assert "is not there any more; give the same weights with --checkpoint FILE" in (
        capsys.readouterr().err
    )
    assert main([*args, "--checkpoint", str(tiny_checkpoint)]) == 0  # same bytes, other name
