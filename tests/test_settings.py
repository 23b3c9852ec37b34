"""Every method's settings are its table's: ``config`` against an independent reading of the
tables, for every built-in method, protocol, standard dataset and shot count; the official
values that matter, checked one by one; malformed tables refused."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.datasets.standard import TRAINED_ON
from benchmark.errors import UserError
from benchmark.method import Setting
from benchmark.miniworld.model import CHECKPOINT, MODEL_NAME
from benchmark.registry import build_registry
from benchmark.settings import Settings, tomllib
from tests.conftest import write_imagefolder

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"
FAMILY = PLUGINS.parent / "benchmark" / "prompting" / "family.toml"
PROTOCOLS = {
    "few_shot": (1, 2, 4, 8, 16),
    "base_to_new": (4, 16),
    "cross_dataset": (4, 16),
    "domain_generalization": (4, 16),
}


def expected(name: str, setting: dict) -> dict:
    """The table's values for a cell, read here without the suite: every matching rule in
    file order, the rules of a preset after the others, the family's table first."""
    files = ([FAMILY] if name not in ("zeroshot", "linear_probe") else []) + [
        PLUGINS / f"{name}.toml"
    ]
    rules = [rule for path in files for rule in tomllib.loads(path.read_text())["rule"]]
    values: dict = {}
    for rule in sorted(rules, key=lambda r: "preset" in r):  # stable: file order kept
        keys = ("preset", "protocol", "dataset", "shots", "backbone")
        if all(k not in rule or setting[k] in _listed(rule[k]) for k in keys):
            values.update(rule["set"])
    return values


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def config_json(*argv: str, capsys) -> dict:
    assert main(["--no-plugin-autoload", "config", *argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


METHODS = ["zeroshot", "linear_probe", "coop", "cocoop", "prograd", "kgcoop", "scoop", "gcscoop"]


@pytest.mark.parametrize("name", METHODS)
def test_every_cell_of_the_standard_datasets_is_the_table(name):
    """The resolved configs of the planner's path equal the tables, for every protocol,
    standard dataset the protocol trains on and shot count; with ``config`` on a sample."""
    registry = build_registry(autoload=False)
    method = registry.methods.get(name).load()
    templates = {n: registry.datasets.get(n).template for n in registry.datasets}
    checked = 0
    for protocol, shots_list in PROTOCOLS.items():
        datasets = TRAINED_ON if protocol in ("few_shot", "base_to_new") else ("imagenet",)
        for dataset in datasets:
            for shots in shots_list:
                cell = dict(
                    preset="reference",
                    protocol=protocol,
                    dataset=dataset,
                    shots=shots,
                    backbone="ViT-B-16",
                )
                config = method.config(Setting(**cell, template=templates[dataset]))
                resolved = dataclasses.asdict(config)
                for field, value in expected(name, cell).items():
                    value = tuple(value) if isinstance(value, list) else value
                    assert resolved[field] == value, (name, cell, field)
                checked += 1
    assert checked == 11 * 5 + 11 * 2 + 2 + 2


def test_config_command_prints_the_planned_cell(capsys):
    report = config_json(
        "prograd", "--protocol", "few_shot", "--dataset", "oxford_pets", "--shots", "16",
        capsys=capsys,
    )  # fmt: skip
    cell = dict(protocol="few_shot", dataset="oxford_pets", shots=16, backbone="ViT-B-16")
    for field, value in expected("prograd", {**cell, "preset": "reference"}).items():
        assert report["config"][field] == value
        assert report["sources"][field].startswith(("BeierZhu/", "KaiyangZhou/"))
    assert report["pretrained"] == "openai"
    assert report["run_id"] is None and "--data-root" in report["run_id_missing"]  # no data here
    assert report["texts"]["teacher"] == ["a type of pet, a photo of a {}."]
    assert report["texts"]["prompt"] == "X X X X X X X X a type of pet, a photo of a {}."


def test_the_config_and_the_run_id_are_those_run_records(tmp_path, capsys):
    """On data that can be read, ``config`` prints the run id that ``run`` records."""
    data = write_imagefolder(tmp_path / "shapes", ("red square", "green circle"), (2, 1, 2))
    common = ["--cache-dir", str(tmp_path / "cache")]
    common += ["--backbone", MODEL_NAME, "--checkpoint", str(CHECKPOINT)]
    cell = ["--protocol", "few_shot", "--dataset", "shapes", "--shots", "1", "--seed", "2"]
    report = config_json("zeroshot", *cell, "--register", f"shapes={data}", *common, capsys=capsys)
    argv = ["run", "--methods", "zeroshot", "--protocols", "few_shot", "--dataset"]
    argv += [f"shapes={data}", "--shots", "1", "--seeds", "2", "--results", str(tmp_path / "r")]
    assert main(["--no-plugin-autoload", *argv, *common, "--no-leaderboard"]) == 0
    assert (tmp_path / "r" / "runs" / f"{report['run_id']}.parquet").is_file()


def test_official_values(capsys):
    """Facts of the official code, one by one (sources in the tables)."""

    def cell(method, protocol, dataset, shots, *extra):
        argv = [method, "--protocol", protocol, "--dataset", dataset, "--shots", str(shots)]
        return config_json(*argv, *extra, capsys=capsys)

    prograd = cell("prograd", "few_shot", "eurosat", 16)["config"]
    assert (prograd["ctx_init"], prograd["lambda_"]) == ("a centered satellite photo of", 0.8)
    assert cell("prograd", "base_to_new", "eurosat", 16)["config"]["lambda_"] == 1.0
    assert cell("prograd", "few_shot", "ucf101", 4)["config"]["ctx_init"] == (
        "a photo of a person doing"
    )
    assert cell("prograd", "base_to_new", "imagenet", 4)["config"]["epochs"] == 50
    assert cell("prograd", "domain_generalization", "imagenet", 4)["config"]["epochs"] == 50
    assert cell("prograd", "base_to_new", "dtd", 4)["config"]["epochs"] == 100
    kgcoop = cell("kgcoop", "base_to_new", "dtd", 16)
    assert kgcoop["config"]["anchor_template"] == "a photo of a {}, a type of texture."
    assert kgcoop["config"]["squared_cosine"] is True
    pets = cell("kgcoop", "base_to_new", "oxford_pets", 16)["config"]
    assert pets["anchor_template"] == "a photo of a {}, a type of pet."
    ensemble = cell("zeroshot:ensemble", "few_shot", "imagenet", 16)["texts"]["templates"]
    assert len(ensemble) == 7 and "a photo of a {}." not in ensemble
    dtd = cell("zeroshot:ensemble", "few_shot", "dtd", 16)["texts"]["templates"]
    assert len(dtd) == 8 and dtd[-1] == "{} texture."
    gcscoop = cell("gcscoop", "base_to_new", "fgvc_aircraft", 16)["config"]
    assert (gcscoop["rho"], gcscoop["beta1"], gcscoop["beta2"]) == (0.1, 0.6, 0.9)
    coop = cell("coop", "few_shot", "caltech101", 2)["config"]
    assert (coop["n_ctx"], coop["ctx_init"], coop["epochs"]) == (16, "", 100)
    gcs = cell("coop", "base_to_new", "caltech101", 16, "--preset", "gcscoop")["config"]
    assert (gcs["batch_size"], gcs["epochs"], gcs["n_ctx"]) == (128, 200, 4)


def test_a_class_specific_context_with_an_init_phrase_is_refused(capsys):
    argv = ["coop", "--protocol", "base_to_new", "--dataset", "dtd", "--shots", "16"]
    code = main(["--no-plugin-autoload", "config", *argv, "--set", "coop.class_specific=true"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "class_specific" in err and "ctx_init=" in err
    csc = config_json("coop:csc", *argv[1:], capsys=capsys)["config"]  # the variant: random
    assert (csc["class_specific"], csc["ctx_init"], csc["n_ctx"]) == (True, "", 16)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[rule]]\nset = { epochs = 1 }\n", "cites its source"),
        ('[[rule]]\nsource = "x"\n', "'set' must be a table"),
        ('[[rule]]\nsource = "x"\nset = { epochs = 1 }\nshots = "4"\n', "shots must be a int"),
        ('[[rule]]\nsource = "x"\nset = { epochs = 1 }\nprotcol = "few_shot"\n', "unknown keys"),
        ("[[rule]\n", "not a readable settings file"),
    ],
)
def test_malformed_settings_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as raised:
        Settings.read(path)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)


def test_every_rule_of_every_table_cites_a_source():
    for path in [FAMILY, *PLUGINS.glob("*.toml")]:
        for rule in Settings.read(path).rules:
            assert len(rule.source) > 20, (path.name, rule)
