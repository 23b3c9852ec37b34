"""The Ray executor on a real local Ray instance (CPU only): same rows as the local executor,
features extracted once, failed and dead tasks recorded, resumption, and its CLI errors."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import ray
from safetensors import safe_open

from benchmark.cli import main
from benchmark.hookspecs import hookimpl
from benchmark.ray_executor import RayExecutor
from benchmark.registry import MethodSpec, build_registry
from benchmark.runner import Runner
from tests.conftest import toy_request
from tests.test_runner import Exploding, ExplodingPlugin

#: Columns that differ between two runs of the same cell: when and how long it ran.
VOLATILE = ["timestamp", "train_seconds", "eval_seconds"]
KEY = ["run_id", "eval_dataset", "split", "metric"]


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    """One local Ray instance for the module (starting one takes seconds); its workers know
    the tiny test model, as the driver does."""
    ray.init(
        address="local",  # a new instance, even where a Ray cluster runs on this machine
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={
            "env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])},
            "worker_process_setup_hook": "tests.conftest.register_tiny_model",
        },
    )
    yield
    ray.shutdown()


def _rows(results) -> pd.DataFrame:
    table = pd.read_parquet(results / "runs").drop(columns=VOLATILE)
    return table.sort_values(KEY).reset_index(drop=True)


def _request(tiny_backbone, tmp_path, name, methods=("zeroshot", "coop")):
    return toy_request(
        tiny_backbone,
        tmp_path,
        methods=list(methods),
        results=tmp_path / name / "results",
        cache_dir=tmp_path / name / "cache",
        overrides={"coop": {"epochs": "2"}} if "coop" in methods else {},
    )


def _keys_per_shard(cache) -> dict[str, list[list[str]]]:
    """Each view folder's shards, as the image keys each one holds."""
    shards: dict[str, list[list[str]]] = {}
    for path in sorted(cache.glob("features/*/*/*/*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            keys = json.loads(handle.metadata()["keys"])
        shards.setdefault(path.parent.name, []).append(keys)
    return shards


def test_ray_rows_equal_local_rows_and_features_are_extracted_once(
    toy_registry, tiny_backbone, tmp_path
):
    local = _request(tiny_backbone, tmp_path, "local")
    distributed = _request(tiny_backbone, tmp_path, "ray")
    progress: list[str] = []
    expected = Runner(toy_registry, local, progress=lambda m: None).run()
    got = Runner(toy_registry, distributed, progress=progress.append).run(RayExecutor())
    assert (got.succeeded, got.skipped, got.failed) == (4, 0, [])
    assert got.rows == expected.rows
    assert any(line.startswith("ray: 2 CPU slots") for line in progress)

    ours, theirs = _rows(local.results), _rows(distributed.results)
    assert len(ours) == expected.rows == 4
    pd.testing.assert_frame_equal(theirs, ours)

    # Two groups ran at once on two CPUs, yet no image was encoded twice in any view: the
    # extraction task encoded everything before the groups started.
    shards = _keys_per_shard(distributed.cache_dir)
    # coop's two epochs of each seed, and the test view
    assert set(shards) == {"test", "seed1-view0", "seed1-view1", "seed2-view0", "seed2-view1"}
    for view, keys in shards.items():
        counts = Counter(key for shard in keys for key in shard)
        assert max(counts.values()) == 1, f"an image was encoded twice in {view}"
    assert shards.keys() == _keys_per_shard(local.cache_dir).keys()


def test_ray_run_resumes_and_skips_done_runs(toy_registry, tiny_backbone, tmp_path):
    first = _request(tiny_backbone, tmp_path, "ray", methods=["zeroshot"])
    assert Runner(toy_registry, first, progress=lambda m: None).run(RayExecutor()).succeeded == 2
    both = _request(tiny_backbone, tmp_path, "ray")
    summary = Runner(toy_registry, both, progress=lambda m: None).run(RayExecutor())
    assert (summary.succeeded, summary.skipped, summary.failed) == (2, 2, [])
    table = pd.read_parquet(both.results / "runs")
    assert table.groupby("method").run_id.nunique().to_dict() == {"zeroshot": 2, "coop": 2}


class Crashing(Exploding):
    """A method whose worker process dies in training (as on a lost node or an OOM kill)."""

    name = "crashing"

    def train(self, runs, config, engine):
        os._exit(3)


class CrashingPlugin:
    @hookimpl
    def register_methods(self, register):
        register(MethodSpec("crashing", "its process dies", Crashing()))


def test_failed_and_dead_tasks_are_recorded_and_retried(toy_plugin, tiny_backbone, tmp_path):
    registry = build_registry(
        autoload=False, extra_plugins=[toy_plugin, ExplodingPlugin(), CrashingPlugin()]
    )
    request = toy_request(
        tiny_backbone,
        tmp_path,
        methods=["exploding", "crashing", "zeroshot"],
        seeds=[1],
        retries=1,
    )
    progress: list[str] = []
    summary = Runner(registry, request, progress=progress.append).run(RayExecutor())
    assert summary.succeeded == 1
    assert sorted(cell.method for cell, _ in summary.failed) == ["crashing", "exploding"]
    assert sum("trying again" in line for line in progress) == 2  # each failed group once more
    table = pd.read_parquet(request.results / "runs")
    failed = table[table.status == "failed"].set_index("method")
    assert "loss became nan" in failed.error["exploding"]
    assert "died" in failed.error["crashing"].lower()
    assert (table[table.method == "zeroshot"].status == "ok").all()


def test_without_ray_the_ray_executor_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if Ray were absent
    assert main(["run", "--executor", "ray", "--results", str(tmp_path)]) == 4
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --executor ray needs Ray, which is not installed: pip install 'vlprompt-bench[ray]'"
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--address", "auto"], "--address is for --executor ray"),
        (["--retries", "-1"], "expected a whole number of at least 0"),
    ],
)
def test_executor_option_mistakes(argv, message, tmp_path, capsys):
    assert main(["run", *argv, "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
