"""The Parquet results store."""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import socket
import subprocess
import sys
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmark.errors import EXIT_ENVIRONMENT, UserError
from benchmark.results import COLUMNS, SCHEMA, ResultRow, ResultStore, claim_owner


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


def test_rows_must_have_every_column_and_no_other(tmp_path):
    incomplete = row()
    del incomplete["device"]
    with pytest.raises(ValueError, match="device"):
        ResultStore(tmp_path).write_run("r1", [incomplete])
    with pytest.raises(ValueError, match="colour"):
        ResultStore(tmp_path).write_run("r1", [dict(row(), colour="red")])


def test_the_schema_is_the_typed_row_s():
    """The Parquet schema is made from ResultRow's fields: names, order and types."""
    names = [f.name for f in dataclasses.fields(ResultRow)]
    assert [*names, "schema_version"] == list(COLUMNS)
    kinds = {"str": pa.types.is_string, "float": pa.types.is_floating, "int": pa.types.is_integer}
    for f in dataclasses.fields(ResultRow):
        check = kinds.get(f.type, pa.types.is_timestamp)
        assert check(SCHEMA.field(f.name).type), f.name
    assert SCHEMA.field("shots").type == pa.int32() == SCHEMA.field("seed").type


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


# -- files in the results folder that are not ours, or damaged ------------------------------


def _with_value_as_text(path):
    table = pq.read_table(path)
    column = table.schema.get_field_index("value")
    text = pa.array(["high"] * table.num_rows)
    return table.set_column(column, "value", text)


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda path: pq.write_table(pa.table({"a": [1]}), path), "lacks columns"),
        (
            lambda path: pq.write_table(
                pq.read_table(path).replace_schema_metadata({"vlprompt_bench_schema_version": "x"}),
                path,
            ),
            "schema version 'x' is not a number",
        ),
        (lambda path: pq.write_table(_with_value_as_text(path), path), "column 'value' holds"),
        (lambda path: (path.unlink(), path.mkdir()), "it is a folder"),
    ],
    ids=["foreign columns", "schema version", "text value", "folder"],
)
def test_foreign_or_damaged_files_are_one_line_environment_errors(tmp_path, make, fragment):
    store = ResultStore(tmp_path)
    store.write_run("r1", [row("r1")])
    foreign = store.write_run("x", [row("x")])
    make(foreign)
    with pytest.raises(UserError) as error:
        store.read()
    message = str(error.value)
    assert error.value.exit_code == EXIT_ENVIRONMENT
    assert str(foreign) in message and fragment in message and "\n" not in message
    assert store.done_run_ids() == {"r1"}  # a damaged file is never a finished run


# -- a full disk -------------------------------------------------------------------------------


def _full_disk(*args, **kwargs):
    handle = args[1]
    handle.write(b"PAR1 partial")  # the disk fills up half-way through the file
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_while_writing_results_loses_nothing_written(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    first = store.write_run("r1", [row("r1")])
    before = first.read_bytes()
    monkeypatch.setattr("benchmark.results.pq.write_table", _full_disk)
    with pytest.raises(UserError) as error:
        store.write_run("r2", [row("r2")])
    assert error.value.exit_code == EXIT_ENVIRONMENT
    assert "No space left on device" in str(error.value) and "r2.parquet" in str(error.value)
    assert first.read_bytes() == before
    assert [p.name for p in store.folder.iterdir()] == ["r1.parquet"]  # no partial file left


# -- claims ------------------------------------------------------------------------------------


@pytest.fixture
def other_process():
    """A live process other than this one."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process.pid
    process.kill()
    process.wait()


def _write_claim(store: ResultStore, run_id: str, **owner) -> None:
    path = store.folder / ".claims" / f"{run_id}.claim"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(owner))


def test_a_claim_records_host_boot_pid_and_start_time(tmp_path):
    store = ResultStore(tmp_path)
    assert store.claim("r1")
    owner = json.loads((store.folder / ".claims" / "r1.claim").read_text())
    assert owner == claim_owner(os.getpid())
    assert owner["host"] == socket.gethostname() and owner["pid"] == os.getpid()
    assert owner["boot"] and owner["start"]  # this machine has /proc
    assert not store.claim("r1")  # held by a live process: this one
    store.release("r1")
    assert store.claim("r1")


def test_a_live_claim_of_another_process_holds(tmp_path, other_process):
    store = ResultStore(tmp_path)
    _write_claim(store, "r1", **claim_owner(other_process))
    assert not store.claim("r1")
    assert f"process {other_process}" in store.holder("r1")


@pytest.mark.parametrize(
    "change",
    [
        {"start": "1"},  # the pid now belongs to another process (started at another time)
        {"boot": "00000000-0000-0000-0000-000000000000"},  # written before a reboot
        {"pid": 2**22 + 17},  # a process that no longer exists
        {"start": None, "pid": "not a pid"},  # damaged
    ],
    ids=["pid reused", "other boot", "dead", "damaged"],
)
def test_a_claim_its_owner_cannot_prove_is_taken_over(tmp_path, other_process, change):
    store = ResultStore(tmp_path)
    _write_claim(store, "r1", **dict(claim_owner(other_process), **change))
    assert store.claim("r1")
    assert json.loads((store.folder / ".claims" / "r1.claim").read_text())["pid"] == os.getpid()


def test_claims_of_other_hosts_hold(tmp_path):
    store = ResultStore(tmp_path)
    _write_claim(store, "r1", **dict(claim_owner(os.getpid()), host="elsewhere", start="1"))
    assert not store.claim("r1")
    assert "elsewhere" in store.holder("r1")


def test_a_full_disk_while_claiming_is_an_environment_error(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    store.write_run("r0", [row("r0")])

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("benchmark.results.os.replace", full)
    with pytest.raises(UserError) as error:
        store.claim("r1")
    assert error.value.exit_code == EXIT_ENVIRONMENT
    assert "No space left on device" in str(error.value)
    monkeypatch.undo()
    assert sorted(p.name for p in (store.folder / ".claims").iterdir() if p.name != ".lock") == []
    assert store.done_run_ids() == {"r0"} and store.claim("r1")


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
    assert store.done_run_ids() == {"r1", "r2"}  # a run read as results is not redone
