"""``python -m benchmark bench --default-run``: the default benchmark's wall time, by phase.

Runs what ``python -m benchmark run`` runs with no arguments (every registered method under
every registered protocol on the mini world, one seed, the quick preset) in a temporary
folder, so from a cold cache: the world is generated and every image is encoded, as on a
fresh machine. The wall time is split into

- reading the datasets, which generates the mini world;
- encoding images (the frozen image encoder, on every split and training view a run reads);
- each method's runs: its training and scoring, without the image encoding they triggered;
- the rest (loading the model, planning, writing results).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmark.planner import Cell
from benchmark.request import RunRequest
from benchmark.runner import Outcome, Runner


class _TimedRunner(Runner):
    """A runner that adds each group's wall time, less its image encoding, to its method."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.method_seconds: dict[str, float] = {}
        self.method_runs: dict[str, int] = {}

    def execute(self, group: list[Cell]) -> Outcome:
        encoding = self.engine.features.encoding_seconds
        start = time.perf_counter()
        outcome = super().execute(group)
        elapsed = time.perf_counter() - start
        elapsed -= self.engine.features.encoding_seconds - encoding
        name = group[0].method
        self.method_seconds[name] = self.method_seconds.get(name, 0.0) + elapsed
        self.method_runs[name] = self.method_runs.get(name, 0) + len(group)
        return outcome


def time_default_run(
    request_for: Callable[[Path, Path], RunRequest], registry, progress: Callable[[str], None]
) -> dict:
    """Run the default benchmark in a temporary folder; the report (seconds by phase).

    ``request_for(results, cache_dir)`` gives the request of ``run`` without arguments
    writing there.
    """
    import os

    import torch

    with tempfile.TemporaryDirectory(prefix="vlprompt-default-run-") as tmp:
        request = request_for(Path(tmp) / "results", Path(tmp) / "cache")
        runner = _TimedRunner(registry, request, progress)
        start = time.perf_counter()
        progress("reading the datasets (generating the mini world)")
        for name in request.datasets:
            runner.catalog.splits(name)
        read = time.perf_counter()
        summary = runner.run()
        end = time.perf_counter()
    encoding = runner.engine.features.encoding_seconds
    methods = sum(runner.method_seconds.values())
    return {
        "datasets": list(request.datasets),
        "cpu_cores": os.cpu_count(),
        "cpu_threads": torch.get_num_threads(),
        "device": str(request.device),
        "torch": torch.__version__,
        "preset": request.preset,
        "runs": summary.succeeded,
        "failed": len(summary.failed),
        "wall_seconds": end - start,
        "datasets_seconds": read - start,
        "encoding_seconds": encoding,
        "other_seconds": end - read - encoding - methods,
        "methods": [
            {"method": name, "runs": runner.method_runs[name], "seconds": seconds}
            for name, seconds in sorted(runner.method_seconds.items(), key=lambda kv: -kv[1])
        ],
    }


def render(report: dict) -> str:
    """The report as a GitHub table and a summary line."""
    from tabulate import tabulate

    rows = [
        ("reading the datasets (generating the mini world)", "", report["datasets_seconds"]),
        ("encoding images", "", report["encoding_seconds"]),
        *((f"method {m['method']}", m["runs"], m["seconds"]) for m in report["methods"]),
        ("other (model, planning, results)", "", report["other_seconds"]),
        ("total", report["runs"], report["wall_seconds"]),
    ]
    total = report["wall_seconds"]
    table = tabulate(
        [(phase, runs, f"{s:.1f}", f"{100 * s / total:.0f}%") for phase, runs, s in rows],
        headers=("phase", "runs", "seconds", "share"),
        tablefmt="github",
    )
    minutes, seconds = divmod(round(total), 60)
    return (
        f"{table}\n\ndefault run ({len(report['datasets'])} datasets, preset {report['preset']}, "
        f"{report['device']}, {report['cpu_threads']} torch threads on {report['cpu_cores']} "
        f"cores): {report['runs']} runs, {report['failed']} failed, {minutes} min {seconds} s "
        "from a cold cache"
    )
