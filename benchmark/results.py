"""The results store: one Parquet dataset, one file per run, one tidy row per
(run, evaluated dataset, split, metric).

Files are written to a temporary name and renamed into place, so a reader never sees a
partial file and a killed run, or a full disk, leaves nothing behind. A run whose file holds
``status == "ok"`` rows is done and never re-run unless asked; a failed run leaves one row
with ``status == "failed"`` and the error, and is retried by the next run. A file in the
folder that is not a results file of this suite (other columns or types, a damaged file, a
folder named ``*.parquet``) is never a finished run, and reading the results refuses it
with a one-line error naming it.

Two runners on one results folder share the work through claims: a runner claims a run
before running it, and a claim names its owner so that a claim whose owner is gone can be
taken over (see :meth:`ResultStore.claim`).

The files are plain Parquet: pandas, polars and DuckDB read them without the suite::

    pandas.read_parquet("results/runs")
    duckdb.sql("select * from 'results/runs/*.parquet'")
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from benchmark.atomic import write_atomically
from benchmark.errors import EXIT_ENVIRONMENT, UserError, first_line
from benchmark.locking import exclusive

SCHEMA_VERSION = 2
RUNS_FOLDER = "runs"
CLAIMS_FOLDER = ".claims"
LOCK_FILE = ".lock"


@dataclass(frozen=True)
class ResultRow:
    """One row of the results table: a run's value of one metric on one evaluated split.

    The Parquet schema is made from these fields (:data:`SCHEMA`, plus ``schema_version``),
    so a row and the table cannot disagree. ``value`` of a failed run is NaN and ``error``
    says why; ``artifact`` is the run's saved learned tensors, relative to the results root.
    """

    run_id: str
    method: str
    protocol: str
    dataset: str
    eval_dataset: str
    split: str
    shots: int = field(metadata={"arrow": pa.int32()})
    seed: int = field(metadata={"arrow": pa.int32()})
    backbone: str
    pretrained: str
    metric: str
    value: float
    n_eval: int
    config: str
    train_seconds: float
    eval_seconds: float
    suite_version: str
    plugin: str
    plugin_version: str
    git_commit: str
    device: str
    timestamp: datetime
    status: str
    error: str
    artifact: str = ""

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> ResultRow:
        """A row from a mapping of its columns; missing or unknown columns are a ValueError
        naming them."""
        names = {f.name for f in fields(cls)}
        missing = sorted(names - set(values) - {"artifact"})
        unknown = sorted(set(values) - names - {"schema_version"})
        if missing or unknown:
            raise ValueError(f"result rows lack columns {missing} or have unknown {unknown}")
        return cls(**{k: v for k, v in values.items() if k in names})

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


#: The Arrow type of each field type of :class:`ResultRow` (a field's ``arrow`` metadata
#: narrows it: shots and seeds are 32-bit).
_ARROW = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "datetime": pa.timestamp("us", tz="UTC"),
}

SCHEMA = pa.schema(
    [(f.name, f.metadata.get("arrow", _ARROW[f.type])) for f in fields(ResultRow)]
    + [("schema_version", pa.int32())],
    metadata={"vlprompt_bench_schema_version": str(SCHEMA_VERSION)},
)

COLUMNS = tuple(SCHEMA.names)

#: Columns added after schema 1, with the value that files written before them mean
#: (``artifact``, schema 2: the run's saved artifact, relative to the results root).
ADDED_COLUMNS = {"artifact": ""}


class ResultStore:
    """The Parquet dataset of results under ``root/runs``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.folder = self.root / RUNS_FOLDER

    def _file(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.parquet"

    def ensure_writable(self) -> None:
        """Fail early, before any work, when results cannot be written."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.folder, prefix=".probe-"):
                pass
        except OSError as exc:
            raise UserError(
                f"results directory {self.folder} is not writable ({exc.strerror})",
                EXIT_ENVIRONMENT,
            ) from exc

    def write_run(self, run_id: str, rows: Iterable[ResultRow | Mapping[str, Any]]) -> Path:
        """Write one run's rows atomically (temporary file, fsync, rename); a write that
        fails (a full disk) leaves no file and is a one-line environment error. Mappings are
        checked as :meth:`ResultRow.of` checks them."""
        typed = [row if isinstance(row, ResultRow) else ResultRow.of(row) for row in rows]
        records = [dict(row.as_dict(), schema_version=SCHEMA_VERSION) for row in typed]
        table = pa.Table.from_pylist(records, schema=SCHEMA)
        target = self._file(run_id)
        try:
            return write_atomically(target, lambda handle: pq.write_table(table, handle))
        except OSError as exc:
            raise UserError(
                f"cannot write results file {target} ({exc.strerror or first_line(exc)}); "
                "the runs written before it are kept",
                EXIT_ENVIRONMENT,
            ) from exc

    # -- claims: two runners on one results directory never run the same cell -----------

    def _claim_file(self, run_id: str) -> Path:
        return self.folder / CLAIMS_FOLDER / f"{run_id}.claim"

    def claim(self, run_id: str) -> bool:
        """Claim a run for this process; False if another live process holds it.

        A claim is a file naming its owner (:func:`claim_owner`: host, boot id, process id and
        the process's start time). A claim of this host whose owner is gone (killed,
        crashed, from before a reboot, or whose process id now belongs to another process)
        is stale and is taken over; claims of other hosts cannot be checked and hold. Taking
        a claim over happens under a lock, so two runners never both take it.
        """
        path = self._claim_file(run_id)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with exclusive(path.parent / LOCK_FILE):
                if path.exists():
                    if not _stale(path):
                        return False
                    path.unlink()
                owner = json.dumps(claim_owner(os.getpid())).encode()
                write_atomically(path, lambda handle: handle.write(owner))
        except OSError as exc:
            raise UserError(
                f"cannot claim a run in {path.parent} ({exc.strerror or first_line(exc)})",
                EXIT_ENVIRONMENT,
            ) from exc
        return True

    def holder(self, run_id: str) -> str:
        """Who holds a run's claim, in words (for the run's summary)."""
        path = self._claim_file(run_id)
        try:
            owner = json.loads(path.read_text())
            return f"host {owner['host']}, process {owner['pid']} (claim {path})"
        except (OSError, ValueError, KeyError, TypeError):
            return f"claim {path}"

    def release(self, run_id: str) -> None:
        self._claim_file(run_id).unlink(missing_ok=True)

    def is_done(self, run_id: str) -> bool:
        """Whether the run's results are complete (status ok); failed runs are not done, nor
        are files that are not results files of this suite."""
        path = self._file(run_id)
        if not path.is_file():
            return False
        try:
            schema = pq.read_schema(path)
            schema_version(schema)
            if columns_problem(schema):
                return False
            status = pq.read_table(path, columns=["status"]).column("status").to_pylist()
        except (pa.ArrowException, OSError, ValueError):
            return False  # not a complete results file (copied in half?): the run is redone
        return bool(status) and all(s == "ok" for s in status)

    def done_run_ids(self) -> set[str]:
        """All runs whose results are complete."""
        if not self.folder.is_dir():
            return set()
        return {path.stem for path in self.folder.glob("*.parquet") if self.is_done(path.stem)}

    def read(self) -> pa.Table:
        """All rows of all runs (an empty table with the schema when there are none); a file
        that is not a results file of this version is a one-line environment error."""
        files = sorted(self.folder.glob("*.parquet")) if self.folder.is_dir() else []
        tables = [read_results_file(path) for path in files]
        if not tables:
            return SCHEMA.empty_table()
        return pa.concat_tables(tables)


def _with_added_columns(table: pa.Table) -> pa.Table:
    """A table of an older schema with the columns added since (:data:`ADDED_COLUMNS`)."""
    for name, value in ADDED_COLUMNS.items():
        if name not in table.column_names:
            column = pa.array([value] * table.num_rows, SCHEMA.field(name).type)
            table = table.append_column(name, column)
    return table


def _kind(kind: pa.DataType) -> str:
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return "number"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "text"
    if pa.types.is_timestamp(kind):
        return "timestamp"
    if pa.types.is_null(kind):
        return "empty"
    return str(kind)


def schema_version(schema: pa.Schema) -> int:
    """The results schema version a file declares (0 when it declares none); ValueError
    when it is not a number."""
    raw = (schema.metadata or {}).get(b"vlprompt_bench_schema_version", b"0")
    text = raw.decode("utf-8", "replace")
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"its schema version {text[:40]!r} is not a number") from None


def columns_problem(schema: pa.Schema) -> str | None:
    """What keeps a Parquet schema's columns from being read as results, or None: every
    column must be there with a value of its kind (a number, text, a timestamp; a column of
    nulls fits any), except the columns added since schema 1 (:data:`ADDED_COLUMNS`), which
    reading fills in."""
    missing = [c for c in COLUMNS if c not in schema.names and c not in ADDED_COLUMNS]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        return f"it lacks columns {shown} (not a results file of this suite)"
    for expected in SCHEMA:
        if expected.name not in schema.names:
            continue
        found = _kind(schema.field(expected.name).type)
        if found not in (_kind(expected.type), "empty"):
            return f"its column {expected.name!r} holds {found}, expected {_kind(expected.type)}"
    return None


def read_results_file(path: Path) -> pa.Table:
    """One results file in this version's schema, or a one-line environment error naming it
    and what is wrong."""

    def refused(why: str) -> UserError:
        return UserError(
            f"{path} is not a readable results file: {why}; delete it or move it away "
            "(`run` redoes a run whose file is unreadable)",
            EXIT_ENVIRONMENT,
        )

    if not path.is_file():
        raise refused("it is a folder" if path.is_dir() else "it is not a regular file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise refused(first_line(exc)) from exc
    try:
        version = schema_version(table.schema)
    except ValueError as exc:
        raise refused(str(exc)) from None
    if version > SCHEMA_VERSION:
        raise UserError(
            f"{path} was written by a newer version of the suite (results schema {version}, "
            f"this version reads up to {SCHEMA_VERSION}); upgrade to read it",
            EXIT_ENVIRONMENT,
        )
    table = _with_added_columns(table)
    problem = columns_problem(table.schema)
    if problem:
        raise refused(problem)
    try:
        return table.select(list(COLUMNS)).cast(SCHEMA)
    except (pa.ArrowException, ValueError) as exc:
        raise refused(first_line(exc)) from exc


def boot_id() -> str | None:
    """This boot of the machine's kernel (Linux), or None where it is not known."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    """When a process started, in clock ticks since boot (field 22 of ``/proc/<pid>/stat``),
    or None where it is not known: with the boot id, it tells a process from a later one
    that reuses its id."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = stat.rpartition(")")[2].split()  # the name before ")" may hold spaces
    return fields[19] if len(fields) > 19 else None  # fields[0] is field 3 (the state)


def claim_owner(pid: int) -> dict[str, Any]:
    """What a claim records of its owner: host name, boot id, process id and start time."""
    return {
        "host": socket.gethostname(),
        "boot": boot_id(),
        "pid": pid,
        "start": process_start(pid),
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _stale(claim: Path) -> bool:
    """Whether a claim's owner is provably gone: same host, and another boot, or its process
    no longer runs, or its process id now belongs to a process started at another time.
    Claims of other hosts cannot be checked from here and are never stale."""
    try:
        owner = json.loads(claim.read_text())
        host, pid = owner["host"], owner["pid"]
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            raise ValueError(pid)
    except (OSError, ValueError, KeyError, TypeError):
        return True  # unreadable or damaged: no owner can prove it holds it
    if host != socket.gethostname():
        return False
    boot = boot_id()
    if owner.get("boot") and boot and owner["boot"] != boot:
        return True
    if not _alive(pid):
        return True
    start = process_start(pid)
    return bool(owner.get("start") and start and owner["start"] != start)
