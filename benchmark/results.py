"""The results store: one Parquet dataset, one file per run, one tidy row per
(run, evaluated dataset, split, metric).

Files are written to a temporary name and renamed into place, so a reader never sees a
partial file and a killed run leaves nothing behind. A run whose file holds ``status ==
"ok"`` rows is done and never re-run unless asked; a failed run leaves one row with
``status == "failed"`` and the error, and is retried by the next run.

The files are plain Parquet: pandas, polars and DuckDB read them without the suite::

    pandas.read_parquet("results/runs")
    duckdb.sql("select * from 'results/runs/*.parquet'")
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from benchmark.atomic import write_atomically
from benchmark.errors import EXIT_ENVIRONMENT, UserError, first_line

SCHEMA_VERSION = 2
RUNS_FOLDER = "runs"
CLAIMS_FOLDER = ".claims"

SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("method", pa.string()),
        ("protocol", pa.string()),
        ("dataset", pa.string()),
        ("eval_dataset", pa.string()),
        ("split", pa.string()),
        ("shots", pa.int32()),
        ("seed", pa.int32()),
        ("backbone", pa.string()),
        ("pretrained", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("n_eval", pa.int64()),
        ("config", pa.string()),
        ("train_seconds", pa.float64()),
        ("eval_seconds", pa.float64()),
        ("suite_version", pa.string()),
        ("plugin", pa.string()),
        ("plugin_version", pa.string()),
        ("git_commit", pa.string()),
        ("device", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("status", pa.string()),
        ("error", pa.string()),
        ("artifact", pa.string()),
        ("schema_version", pa.int32()),
    ],
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

    def write_run(self, run_id: str, rows: Iterable[Mapping[str, Any]]) -> Path:
        """Write one run's rows atomically (temporary file, fsync, rename)."""
        rows = [dict(row, schema_version=SCHEMA_VERSION) for row in rows]
        missing = [c for c in COLUMNS if any(c not in row for row in rows)]
        if missing:
            raise ValueError(f"result rows lack columns {missing}")
        table = pa.Table.from_pylist(rows, schema=SCHEMA)
        return write_atomically(self._file(run_id), lambda handle: pq.write_table(table, handle))

    # -- claims: two runners on one results directory never run the same cell -----------

    def _claim_file(self, run_id: str) -> Path:
        return self.folder / CLAIMS_FOLDER / f"{run_id}.claim"

    def claim(self, run_id: str) -> bool:
        """Claim a run for this process; False if a live process on this host holds it.

        A claim is a file created exclusively, holding the host name and process id. A claim
        whose process is gone (killed, crashed) is stale and is taken over.
        """
        path = self._claim_file(run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        owner = f"{socket.gethostname()} {os.getpid()}"
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if not _stale(path):
                    return False
                path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(owner)
            return True
        return False

    def release(self, run_id: str) -> None:
        self._claim_file(run_id).unlink(missing_ok=True)

    def is_done(self, run_id: str) -> bool:
        """Whether the run's results are complete (status ok); failed runs are not done."""
        path = self._file(run_id)
        if not path.is_file():
            return False
        try:
            status = pq.read_table(path, columns=["status"]).column("status").to_pylist()
        except (pa.ArrowException, OSError):
            return False  # not a complete results file (copied in half?): the run is redone
        return bool(status) and all(s == "ok" for s in status)

    def done_run_ids(self) -> set[str]:
        """All runs whose results are complete."""
        if not self.folder.is_dir():
            return set()
        return {path.stem for path in self.folder.glob("*.parquet") if self.is_done(path.stem)}

    def read(self) -> pa.Table:
        """All rows of all runs (an empty table with the schema when there are none)."""
        files = sorted(self.folder.glob("*.parquet")) if self.folder.is_dir() else []
        tables = []
        for path in files:
            try:
                table = pq.read_table(path)
            except (pa.ArrowException, OSError) as exc:
                raise UserError(
                    f"{path} is not a readable results file ({first_line(exc)}); delete it or move "
                    "it away (`run` redoes a run whose file is unreadable)",
                    EXIT_ENVIRONMENT,
                ) from exc
            version = int((table.schema.metadata or {}).get(b"vlprompt_bench_schema_version", 0))
            if version > SCHEMA_VERSION:
                raise UserError(
                    f"{path} was written by a newer version of the suite (results schema "
                    f"{version}, this version reads up to {SCHEMA_VERSION}); upgrade to read it",
                    EXIT_ENVIRONMENT,
                )
            tables.append(_with_added_columns(table).select(list(COLUMNS)).cast(SCHEMA))
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


def _stale(claim: Path) -> bool:
    """A claim of a process that no longer runs on this host (claims of other hosts hold)."""
    try:
        host, pid = claim.read_text().split()
    except (OSError, ValueError):
        return True  # unreadable or half-written: its writer died mid-way
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False
