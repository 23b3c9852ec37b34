"""Faults provoked for real: killed runs, concurrent runners, a diverging loss, foreign
feature-cache shards, and loaders that could execute code."""

from __future__ import annotations

import os
import re
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
    if mode == "together":  # start the matrix at the same moment as another runner
        print("ready", flush=True)
        while not (Path({out!r}) / "go").exists():
            time.sleep(0.02)
    summary = Runner(registry, request, progress=lambda m: None).run()
    print("done", summary.succeeded, summary.skipped, len(summary.held), flush=True)
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
    _, succeeded, skipped, held = finished.stdout.split()[-4:]
    # zero-shot was done before the kill; the killed runner's claims are stale, not held
    assert (int(succeeded), int(skipped), int(held)) == (2, 2, 0)
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
    first, second = _start(script, "together"), _start(script, "together")
    for process in (first, second):  # both have imported everything and built the registry
        assert process.stdout.readline().strip() == "ready"
    (tmp_path / "go").touch()
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0
    counts = [tuple(map(int, out.split()[-3:])) for out in outputs]
    assert all(succeeded + skipped + held == 4 for succeeded, skipped, held in counts)
    assert sum(succeeded for succeeded, _, _ in counts) == 4  # every cell ran exactly once
    _each_cell_once(tmp_path)


# -- a loss that becomes infinite, for real ---------------------------------------------------


def test_diverging_loss_fails_its_cells_only_and_is_retried(tmp_path, capsys):
    from benchmark.cli import main
    from benchmark.miniworld.model import CHECKPOINT, MODEL_NAME
    from tests.conftest import write_imagefolder

    data = write_imagefolder(tmp_path / "shapes", ("red square", "green circle", "blue ring"))
    argv = [
        "run",
        *("--methods", "coop,zeroshot", "--protocols", "few_shot", "--shots", "2"),
        *("--seeds", "1,2", "--dataset", f"shapes={data}", "--no-leaderboard"),
        # epoch 0 is the warm-up epoch; epoch 1 steps with lr = 1e38; epoch 2 overflows
        *("--set", "coop.lr=1e38", "--set", "coop.epochs=3"),
        *("--backbone", MODEL_NAME, "--checkpoint", str(CHECKPOINT), "--device", "cpu"),
        *("--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache")),
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    failed = [line for line in err.splitlines() if line.startswith("failed: ")]
    assert len(failed) == 2
    for line, seed in zip(failed, (1, 2), strict=True):
        assert line.startswith(f"failed: coop few_shot shapes 2 shots seed {seed}: ")
        assert "TrainingDiverged: loss 'loss' became [" in line
    table = pd.read_parquet(tmp_path / "results" / "runs")
    assert set(table[table.status == "ok"].method) == {"zeroshot"}
    bad = table[table.status == "failed"]
    assert len(bad) == 2 and set(bad.method) == {"coop"}
    assert bad.error.str.contains("TrainingDiverged").all()

    assert main(argv) == 1  # the next run retries the failed cells only
    assert "4 runs planned, 2 already done, 2 to run" in capsys.readouterr().err


# -- feature-cache shards that must not be used -----------------------------------------------


def _cache_samples(toy_root):
    from benchmark.datasets.splitfile import read_split_file
    from tests.conftest import TOY_DATASET

    base = toy_root / TOY_DATASET
    return read_split_file(base / f"split_zhou_{TOY_DATASET}.json", base / "images").train[:4]


def _rewrite_shard(shard: Path, target: Path, **meta_changes: str) -> None:
    """Copy a shard to ``target`` with some metadata changed (a shard of another writer)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(shard), framework="pt") as handle:
        meta = dict(handle.metadata(), **meta_changes)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(load_file(str(shard)), str(target), metadata=meta)


def test_foreign_feature_shards_are_detected_and_rebuilt(tiny_engine, toy_root, tmp_path):
    import torch

    from benchmark.backbone import Backbone, BackboneSpec
    from benchmark.features import FeatureCache
    from benchmark.miniworld.model import CHECKPOINT, MODEL_NAME

    samples = _cache_samples(toy_root)
    ours = FeatureCache(tmp_path / "ours", tiny_engine.backbone)
    expected_test, expected_view0 = ours.views(samples, [-1, 0])
    # Another backbone's shard of the same images, copied into our folder.
    other = FeatureCache(tmp_path / "other", Backbone(BackboneSpec(MODEL_NAME, None, CHECKPOINT)))
    other.features(samples)
    (foreign,) = other.view_folder(-1).glob("*.safetensors")
    cache = tmp_path / "c"
    mine = FeatureCache(cache, tiny_engine.backbone)
    target = mine.view_folder(-1) / foreign.name
    _rewrite_shard(foreign, target)
    # Our own test-view shard placed among the view-0 shards.
    (own_test,) = ours.view_folder(-1).glob("*.safetensors")
    _rewrite_shard(own_test, mine.view_folder(0) / own_test.name)
    # A shard whose metadata names another image transform.
    (own_view0,) = ours.view_folder(0).glob("*.safetensors")
    stray = mine.view_folder(1) / "x.safetensors"
    _rewrite_shard(own_view0, stray, transform="other-transform")

    fresh = FeatureCache(cache, tiny_engine.backbone)
    test, view0 = fresh.views(samples, [-1, 0])
    torch.testing.assert_close(test, expected_test)
    torch.testing.assert_close(view0, expected_view0)
    # the foreign shard was replaced by ours (same images, same shard name)
    from safetensors import safe_open

    with safe_open(str(target), framework="pt") as handle:
        assert handle.metadata()["backbone"] == tiny_engine.backbone.fingerprint
    fresh.features(samples, view=1)
    assert not stray.exists()


# -- nothing untrusted is unpickled ----------------------------------------------------------

CODE_EXECUTING_LOADERS = re.compile(
    r"^\s*(import|from)\s+(pickle|cPickle|dill|joblib|shelve|marshal)\b"
    r"|\b(np|numpy)\.load\(|\byaml\.(unsafe_)?load\(|(?<![\w.])(eval|exec)\(",
    re.MULTILINE,
)


def test_no_loader_that_can_execute_code():
    """Weights load through safetensors or ``torch.load(weights_only=True)``; caches and
    results are safetensors, Parquet and JSON. (A pickled checkpoint is refused for real in
    ``test_bad_input.py::test_pickled_code_in_a_checkpoint_never_runs``.)"""
    folders = ("benchmark", "plugins", "protocols", "tests/plugin_example")
    sources = [p for folder in folders for p in sorted((ROOT / folder).rglob("*.py"))]
    assert len(sources) > 30
    for path in sources:
        text = path.read_text()
        assert not CODE_EXECUTING_LOADERS.search(text), path
        for call in re.finditer(r"torch\.load\(([^)]*)\)", text):
            assert "weights_only=True" in call.group(1), path
