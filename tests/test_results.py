"""The Parquet results store."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pyarrow.parquet as pq
import pytest

from benchmark.errors import UserError
from benchmark.results import COLUMNS, SCHEMA, ResultStore


def row(run_id="r1", status="ok", **changes):
    values = {c: None for c in COLUMNS}
    values.update(
        run_id=run_id,
        method="coop",
        protocol="few_shot",
        dataset="dtd",
        eval_dataset="dtd",
        split="all",
        shots=16,
        seed=1,
        backbone="ViT-B-16",
        pretrained="openai",
        metric="accuracy",
        value=63.5,
        n_eval=1692,
        config="{}",
        train_seconds=1.0,
        eval_seconds=0.5,
        suite_version="0.1.0",
        plugin="vlprompt-bench",
        plugin_version="0.1.0",
        git_commit="",
        device="cpu",
        timestamp=datetime.now(timezone.utc),
        status=status,
        error="",
    )
    values.update(changes)
    return values


def test_write_read_and_done(tmp_path):
    store = ResultStore(tmp_path)
    store.write_run("r1", [row("r1"), row("r1", split="base")])
    store.write_run("r2", [row("r2", status="failed", value=math.nan)])
    table = store.read()
    assert table.num_rows == 3
    assert store.done_run_ids() == {"r1"}
    assert not list(store.folder.glob(".*"))  # no temporary files left behind


def test_readable_without_the_suite(tmp_path):
    pandas = pytest.importorskip("pandas")
    duckdb = pytest.importorskip("duckdb")
    store = ResultStore(tmp_path)
    store.write_run("r1", [row("r1")])
    assert pandas.read_parquet(store.folder).shape == (1, len(COLUMNS))
    count = duckdb.sql(f"select count(*) from '{store.folder}/*.parquet'").fetchall()[0][0]
    assert count == 1


def test_rows_must_have_every_column(tmp_path):
    incomplete = row()
    del incomplete["device"]
    with pytest.raises(ValueError, match="device"):
        ResultStore(tmp_path).write_run("r1", [incomplete])


def test_newer_schema_is_refused(tmp_path):
    store = ResultStore(tmp_path)
    path = store.write_run("r1", [row()])
    table = pq.read_table(path)
    newer = table.replace_schema_metadata({"vlprompt_bench_schema_version": "99"})
    pq.write_table(newer, path)
    with pytest.raises(UserError, match="newer version"):
        store.read()


def test_unwritable_results_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="not writable"):
        ResultStore(blocker).ensure_writable()


def test_schema_has_the_design_columns():
    for column in (
        "run_id",
        "method",
        "protocol",
        "dataset",
        "eval_dataset",
        "split",
        "shots",
        "seed",
        "backbone",
        "pretrained",
        "metric",
        "value",
        "n_eval",
        "config",
        "train_seconds",
        "eval_seconds",
        "plugin",
        "plugin_version",
        "git_commit",
        "device",
        "timestamp",
        "status",
    ):
        assert column in SCHEMA.names


def test_files_of_schema_1_read_with_an_empty_artifact(tmp_path):
    store = ResultStore(tmp_path)
    path = store.write_run("r1", [row("r1", artifact="artifacts/r1.safetensors")])
    table = pq.read_table(path).drop_columns(["artifact"])
    pq.write_table(table.replace_schema_metadata({"vlprompt_bench_schema_version": "1"}), path)
    store.write_run("r2", [row("r2", artifact="artifacts/r2.safetensors")])
    read = store.read().to_pydict()
    assert dict(zip(read["run_id"], read["artifact"], strict=True)) == {
        "r1": "",
        "r2": "artifacts/r2.safetensors",
    }
