"""A third-party plugin for real: the pip-installed distribution in tests/plugin_example.

It adds the method ``coop_clipped`` through the ``vlprompt_bench`` entry-point group only;
these tests drive it through ``python -m benchmark`` in a subprocess, as a user would.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.miniworld.model import CHECKPOINT, MODEL_NAME
from tests.conftest import write_imagefolder

DISTRIBUTION = "vlprompt-bench-example-plugin"
METHOD = "coop_clipped"


@pytest.fixture(scope="module")
def plugin_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pytest.fail(
            f"the example plugin {DISTRIBUTION} is not installed; install it with "
            "`pip install ./tests/plugin_example` (.ci/run does)"
        )


def benchmark(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmark", *argv], capture_output=True, text=True, timeout=300
    )


def listed_methods(*options: str) -> dict[str, str]:
    """``list methods`` as {method: provider distribution}."""
    result = benchmark(*options, "list", "methods")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[2:]]
    return {row[0]: row[-1] for row in rows}


def test_listed_with_its_distribution_and_hidden_without_autoload(plugin_version):
    assert listed_methods()[METHOD] == DISTRIBUTION
    without = listed_methods("--no-plugin-autoload")
    assert METHOD not in without and "coop" in without


def test_runs_through_the_benchmark_and_rows_name_the_plugin(plugin_version, tmp_path, capsys):
    data = write_imagefolder(tmp_path / "shapes", ("red square", "green circle", "blue ring"))
    run = [
        "run",
        *("--methods", METHOD, "--protocols", "few_shot", "--shots", "1", "--seeds", "1,2"),
        *("--dataset", f"shapes={data}", "--set", f"{METHOD}.epochs=1"),
        *("--set", f"{METHOD}.max_norm=0.001"),
        *("--backbone", MODEL_NAME, "--checkpoint", str(CHECKPOINT), "--device", "cpu"),
        *("--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache")),
    ]
    result = benchmark(*run, "--no-leaderboard")
    assert result.returncode == 0, result.stderr
    table = pd.read_parquet(tmp_path / "results" / "runs")
    assert set(table.method) == {METHOD} and set(table.seed) == {1, 2}
    assert (table.plugin == DISTRIBUTION).all()
    assert (table.plugin_version == plugin_version).all()
    accuracy = table[table.metric == "accuracy"]
    assert len(accuracy) == 2 and accuracy.value.between(0, 100).all()
    # the plugin's own diagnostic: with so small a threshold every step is clipped
    clipped = table[table.metric == "clipped_fraction"]
    assert len(clipped) == 2 and (clipped.value == 1.0).all()

    assert main(["--no-plugin-autoload", *run]) == 2  # in-process: no second torch import
    assert f"unknown method {METHOD!r}" in capsys.readouterr().err
