"""Faults provoked for real: killed runs, concurrent runners."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from tests.conftest import ToyDatasets, toy_request, register_tiny_model
    from benchmark.backbone import BackboneSpec
    from benchmark.registry import build_registry
    from benchmark.runner import Runner
    import vlprompt_methods.coop as coop

    register_tiny_model()
    mode = sys.argv[1]
    if mode == "slow":  # announce training, then take long enough to be killed in it
        original = coop.CoOp.train
        def slow(self, runs, config, engine):
            print("training", flush=True)
            time.sleep(60)
            return original(self, runs, config, engine)
        coop.CoOp.train = slow
    if mode == "slow-write":  # die half-way through writing a result file
        import benchmark.results as results
        original_write = results.pq.write_table
        def half(table, handle, **kw):
            handle.write(b"PAR1 partial")
            handle.flush()
            print("writing", flush=True)
            time.sleep(60)
        results.pq.write_table = half
    registry = build_registry(autoload=False, extra_plugins=[ToyDatasets(Path({data!r}))])
    request = toy_request(BackboneSpec("vlprompt-test-tiny", None, Path({ckpt!r})),
                          Path({out!r}), methods=["zeroshot", "coop"])
    summary = Runner(registry, request, progress=lambda m: None).run()
    print("done", summary.succeeded, summary.skipped, flush=True)
    """
)


def _script(tmp_path, toy_root, tiny_checkpoint) -> Path:
    path = tmp_path / "run_matrix.py"
    path.write_text(
        SCRIPT.format(
            root=str(ROOT), data=str(toy_root), ckpt=str(tiny_checkpoint), out=str(tmp_path)
        )
    )
    return path


def _start(script: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(script), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _kill_when(process: subprocess.Popen, line: str) -> None:
    deadline = time.monotonic() + 120
    for output in process.stdout:
        if output.strip() == line or time.monotonic() > deadline:
            break
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def _each_cell_once(tmp_path) -> pd.DataFrame:
    table = pd.read_parquet(tmp_path / "results" / "runs")
    assert (table.status == "ok").all()
    cells = table.groupby(["method", "seed"]).run_id.nunique()
    assert len(cells) == 4 and (cells == 1).all()
    assert len(table) == 4  # one accuracy row per run: no duplicate and no partial rows
    return table


def test_killed_during_training_then_resumed(tmp_path, toy_root, tiny_checkpoint):
    script = _script(tmp_path, toy_root, tiny_checkpoint)
    _kill_when(_start(script, "slow"), "training")
    finished = subprocess.run(
        [sys.executable, str(script), "normal"], capture_output=True, text=True, timeout=300
    )
    assert finished.returncode == 0, finished.stderr
    _, succeeded, skipped = finished.stdout.split()[-3:]
    assert (int(succeeded), int(skipped)) == (2, 2)  # zero-shot was done before the kill
    _each_cell_once(tmp_path)


def test_killed_during_a_results_write_then_resumed(tmp_path, toy_root, tiny_checkpoint):
    script = _script(tmp_path, toy_root, tiny_checkpoint)
    _kill_when(_start(script, "slow-write"), "writing")
    assert not list((tmp_path / "results" / "runs").glob("*.parquet"))  # nothing half-written
    finished = subprocess.run(
        [sys.executable, str(script), "normal"], capture_output=True, text=True, timeout=300
    )
    assert finished.returncode == 0, finished.stderr
    _each_cell_once(tmp_path)


def test_two_runners_on_one_results_directory(tmp_path, toy_root, tiny_checkpoint):
    script = _script(tmp_path, toy_root, tiny_checkpoint)
    first, second = _start(script, "normal"), _start(script, "normal")
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0
    succeeded = sum(int(out.split()[-2]) for out in outputs)
    assert succeeded == 4  # every cell ran exactly once between the two
    _each_cell_once(tmp_path)
