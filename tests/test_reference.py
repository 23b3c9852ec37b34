"""The transcription of the papers' tables checked against the papers' own arithmetic: every
printed average equals the mean of the printed rows it averages, every printed harmonic mean
equals 2BN/(B+N), to the papers' two-decimal rounding."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from benchmark.reference import AVERAGE, AVERAGED_OVER, COLUMNS, comparable, load
from benchmark.registry import build_registry

# Inputs rounded to 0.005 and a printed result rounded to 0.005: at most 0.01 apart.
ROUNDING = 0.01 + 1e-9


@pytest.fixture(scope="module")
def published() -> pd.DataFrame:
    return load()


def table(df: pd.DataFrame, paper: str, name: str) -> pd.DataFrame:
    rows = df[(df["paper"] == paper) & (df["table"] == name)]
    assert not rows.empty, f"{paper} table {name} missing"
    return rows


def h(base: float, new: float) -> float:
    return 2 * base * new / (base + new)


def test_columns_and_counts(published: pd.DataFrame) -> None:
    assert tuple(published.columns) == COLUMNS
    counts = published.groupby(["paper", "table"]).size().to_dict()
    assert counts == {
        ("gcscoop", "1"): 8 * 12 * 3,  # 8 methods x (11 datasets + AVG) x seen/unseen/HM
        ("gcscoop", "2"): 6 * 6,  # 6 methods x (source + 4 targets + AVG)
        ("gcscoop", "4"): 11 * 5,  # 11 datasets x (rho, rho†, rho, beta1, beta2)
        ("gcscoop", "5"): 11 * 6,  # (10 targets + AVG) x 6 methods
        ("prograd-iccv2023", "1"): 2 + 4 * 5,
        **{("prograd-iccv2023", f"2{s}"): 5 * 5 for s in "abcd"},
        ("prograd-iccv2023", "3"): 4 * 3,
        ("prograd-iccv2023", "5"): 7 * 5,
        ("prograd-iccv2023", "6"): 2 * 5,
        ("prograd-iccv2023", "7a"): 6 * 5,
        ("prograd-iccv2023", "7b"): 6 * 5,
    }
    assert not published.duplicated([c for c in COLUMNS if c != "value"]).any()


def test_names_are_the_suites(published: pd.DataFrame) -> None:
    registry = build_registry(autoload=False)
    datasets = set(published["dataset"]) | set(published["eval_dataset"])
    assert datasets - {AVERAGE} <= {n for n in registry.datasets}
    assert set(published["protocol"]) <= set(registry.protocols)
    methods = {m.partition(":")[0] for m in published["method"]}
    assert methods == set(registry.methods) | {"lwf", "cosine"}  # two the suite lacks
    assert {m.partition(":")[1] for m in comparable(published)["method"]} == {"", ":"}
    assert set(published["backbone"]) == {"RN50", "RN101", "ViT-B-32", "ViT-B-16"}


def test_gcscoop_table1_harmonic_means(published: pd.DataFrame) -> None:
    """Each dataset's HM is H of its seen and unseen accuracies (88 rows)."""
    wide = table(published, "gcscoop", "1").pivot_table(
        index=["method", "variant", "dataset"], columns="split", values="value"
    )
    per_dataset = wide[wide.index.get_level_values("dataset") != AVERAGE]
    assert len(per_dataset) == 8 * 11
    for key, r in per_dataset.iterrows():
        assert abs(h(r["base"], r["new"]) - r["hm"]) <= ROUNDING, key


def test_gcscoop_table1_averages(published: pd.DataFrame) -> None:
    """The AVG block is the mean over the 11 datasets of seen, unseen and HM (the average HM
    is the mean of the per-dataset HMs, not H of the averages)."""
    rows = table(published, "gcscoop", "1")
    datasets = rows[rows["dataset"] != AVERAGE]
    assert set(datasets["dataset"]) == AVERAGED_OVER["base_to_new"]
    means = datasets.groupby(["method", "variant", "split"])["value"].mean()
    printed = rows[rows["dataset"] == AVERAGE].set_index(["method", "variant", "split"])["value"]
    assert len(printed) == 8 * 3
    for key, value in printed.items():
        assert abs(means[key] - value) <= ROUNDING, key
    avg = printed.unstack("split")
    assert (avg["hm"] < avg.apply(lambda r: h(r["base"], r["new"]), axis=1)).all()


@pytest.mark.parametrize(
    ("name", "protocol"), [("2", "domain_generalization"), ("5", "cross_dataset")]
)
def test_gcscoop_transfer_averages(published: pd.DataFrame, name: str, protocol: str) -> None:
    """Tables 2 and 5: AVG is the mean over the targets (the source excluded)."""
    rows = table(published, "gcscoop", name)
    targets = rows[~rows["eval_dataset"].isin([AVERAGE, "imagenet"])]
    assert set(targets["eval_dataset"]) == AVERAGED_OVER[protocol]
    means = targets.groupby("method")["value"].mean()
    printed = rows[rows["eval_dataset"] == AVERAGE].set_index("method")["value"]
    assert len(printed) == 6
    for method, value in printed.items():
        assert abs(means[method] - value) <= ROUNDING, method


def test_prograd_table3_average_h_below_h_of_averages(published: pd.DataFrame) -> None:
    """Table 3 prints no per-dataset numbers; its H, a mean of per-dataset H (as GCSCoOp's),
    can only lie below H of the averaged base and new (H is concave): 4 rows."""
    wide = table(published, "prograd-iccv2023", "3").pivot_table(
        index="method", columns="split", values="value"
    )
    assert len(wide) == 4
    for method, r in wide.iterrows():
        assert r["hm"] <= h(r["base"], r["new"]) + ROUNDING, method


def test_prograd_tables_agree_where_they_repeat(published: pd.DataFrame) -> None:
    """Table 5 repeats table 1's CoOp and ProGrad rows."""
    t1 = table(published, "prograd-iccv2023", "1").set_index(["method", "shots"])["value"]
    t5 = table(published, "prograd-iccv2023", "5")
    repeated = t5[t5["method"].isin(["coop", "prograd"])].set_index(["method", "shots"])["value"]
    assert len(repeated) == 10
    for key, value in repeated.items():
        assert t1[key] == value, key


def test_table4_is_what_gcscoop_runs(published: pd.DataFrame) -> None:
    """The GCSCoOp and SCoOp settings per dataset are appendix table 4's (the paper's '-' is
    beta1 0, no lower bound); SCoOp and GCSCoOp share rho, as the paper states."""
    from benchmark.method import Setting
    from benchmark.registry import build_registry

    methods = build_registry(autoload=False).methods
    gcscoop, scoop = methods.get("gcscoop").load(), methods.get("scoop").load()
    rows = table(published, "gcscoop", "4")
    main = rows[rows["variant"] == ""].pivot_table(
        index="dataset", columns=["method", "metric"], values="value", dropna=False
    )
    assert len(main) == 11
    for dataset, printed in main.iterrows():
        setting = Setting("base_to_new", dataset, 16, "ViT-B-16", "reference")
        config = gcscoop.config(setting)
        assert printed["gcscoop", "rho"] == config.rho == scoop.config(setting).rho, dataset
        beta1 = printed["gcscoop", "beta1"]
        assert (0.0 if math.isnan(beta1) else beta1) == config.beta1, dataset
        assert printed["gcscoop", "beta2"] == config.beta2, dataset
