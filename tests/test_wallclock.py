"""The default-run timer (``bench --default-run``) on toy data and the tiny model."""

from __future__ import annotations

import json

from benchmark import cli
from benchmark.perf import wallclock
from tests.conftest import toy_request


def test_default_run_report_splits_the_wall_time_into_phases(toy_registry, tiny_backbone):
    asked = []

    def request_for(results, cache_dir):
        asked.append((results, cache_dir))
        return toy_request(tiny_backbone, results.parent, results=results, cache_dir=cache_dir)

    report = wallclock.time_default_run(request_for, toy_registry, progress=lambda m: None)
    ((results, _),) = asked
    assert not results.parent.exists()  # a temporary folder, removed afterwards
    assert (report["runs"], report["failed"]) == (4, 0)  # 2 methods x 2 seeds
    assert {m["method"]: m["runs"] for m in report["methods"]} == {"zeroshot": 2, "coop": 2}
    assert report["encoding_seconds"] > 0  # a cold cache: every image was encoded
    phases = (
        report["datasets_seconds"]
        + report["encoding_seconds"]
        + sum(m["seconds"] for m in report["methods"])
        + report["other_seconds"]
    )
    assert abs(phases - report["wall_seconds"]) < 1e-6
    assert min(m["seconds"] for m in report["methods"]) > 0
    assert report["other_seconds"] >= 0
    text = wallclock.render(report)
    assert "| method coop" in text and "4 runs, 0 failed" in text


def test_default_run_rejects_the_step_bench_options(capsys):
    code = cli.main(["bench", "--default-run", "--classes", "10"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and "--classes" in err and "--json" in err


def test_default_run_times_what_run_without_arguments_runs(monkeypatch, tmp_path, capsys):
    """The CLI hands the timer the request of a plain ``run`` (the timer itself is the
    first test's); the report is printed and written as JSON."""
    from benchmark.miniworld import plugin

    requests = []

    def record(request_for, registry, progress):
        requests.append((request_for(tmp_path / "r", tmp_path / "c"), registry))
        return {"runs": 1, "failed": 0}

    monkeypatch.setattr(wallclock, "time_default_run", record)
    monkeypatch.setattr(wallclock, "render", lambda report: "table")
    out = tmp_path / "report.json"
    assert cli.main(["--no-plugin-autoload", "bench", "--default-run", "--json", str(out)]) == 0
    ((request, registry),) = requests
    assert sorted(request.datasets) == sorted(plugin.DATASETS)
    assert request.methods == list(registry.methods)
    assert request.protocols == list(registry.protocols)
    assert (request.seeds, request.preset, request.shots) == ([1], "quick", [4])
    assert (request.results, request.cache_dir) == (tmp_path / "r", tmp_path / "c")
    assert json.loads(out.read_text()) == {"runs": 1, "failed": 0}
    assert capsys.readouterr().out.strip() == "table"
