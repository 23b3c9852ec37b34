"""``python -m benchmark bench``: training-step throughput, ours against the reference
design; with ``--default-run``, the default benchmark's wall time by phase."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from benchmark.cli.command import Command
from benchmark.cli.options import count, csv_list, positive_int, positive_ints, registry_for
from benchmark.errors import EXIT_CELLS_FAILED, EXIT_DATA, EXIT_OK, UserError

DESCRIPTION = """\
Times, side by side on the same model, a reference-design training step
and ours, for each method and class count; feature extraction throughput; and the
text encoder's achieved TFLOP/s. Random weights: nothing is downloaded.
With --default-run: the wall time of `python -m benchmark run` without arguments
instead, from a cold cache, by phase."""

EPILOG = """examples:
  python -m benchmark bench --quick                          # checks that the bench runs
  python -m benchmark bench --device cuda --estimate --json bench.json
  python -m benchmark bench --default-run --json default-run.json   # the whole default run
"""


def configure(bench: argparse.ArgumentParser) -> None:
    bench.add_argument("--backbone", default="ViT-B-16", help="open_clip model (default ViT-B-16)")
    bench.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    bench.add_argument(
        "--methods",
        type=csv_list,
        default=["coop", "cocoop", "prograd", "kgcoop", "gcscoop"],
        help="comma-separated (default: coop,cocoop,prograd,kgcoop,gcscoop; also scoop)",
    )
    bench.add_argument(
        "--classes",
        type=positive_ints,
        help="class counts (default: 10,100,1000 on CUDA, 10,100 on the CPU)",
    )
    bench.add_argument(
        "--seeds-batched",
        type=positive_int,
        default=3,
        help="runs batched in our step (default 3: the papers' seeds, which the runner "
        "trains together)",
    )
    bench.add_argument("--images", type=positive_int, default=256, help="JPEG files for extraction")
    bench.add_argument(
        "--workers",
        type=count,
        default=min(8, os.cpu_count() or 1),
        help="data-loader workers of the extraction (default: min(8, CPU cores))",
    )
    bench.add_argument(
        "--repeat",
        type=positive_int,
        help="timed reference steps, and extra epochs of ours, per figure (default: 3 on the "
        "CPU, 20 on CUDA)",
    )
    bench.add_argument(
        "--threads",
        type=positive_int,
        help="CPU threads for torch (default: torch's choice; 1 times more steadily on a "
        "shared machine)",
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help="the mini world's tiny CLIP, 10 and 100 classes, few repeats: a check "
        "that the bench runs, not a measurement",
    )
    bench.add_argument(
        "--default-run",
        action="store_true",
        help="instead: time `python -m benchmark run` without arguments (the mini world, "
        "every method and protocol) from a cold cache in a temporary folder, by phase",
    )
    bench.add_argument("--json", type=Path, help="also write the report as JSON")
    bench.add_argument(
        "--estimate",
        action="store_true",
        help="also estimate the device hours of the papers' few-shot and base-to-new "
        "matrices, ours against the reference design",
    )
    bench.add_argument(
        "--from-json",
        type=Path,
        metavar="FILE",
        help="measure nothing: read a report written by --json (e.g. on a GPU), or the speed "
        "part of a `doctor --json` report, and print it (with --estimate, its estimate)",
    )


def run(args: argparse.Namespace) -> int:
    from benchmark.perf import bench, estimate

    if args.default_run:
        return _default_run(args)
    measuring = args.from_json is None
    registry = registry_for(args) if measuring or args.estimate else None
    if measuring:
        report = _measure(args, registry)
        checked = contextlib.nullcontext()
    else:
        report = read_report(args.from_json, "bench")
        report = report.get("bench", report)  # a doctor's report holds a bench report
        checked = using_report("--from-json", args.from_json, "bench")
    with checked:
        print(bench.render(report))
        if args.estimate:
            report["estimate"] = estimate.estimate(report, registry)
            print()
            print(estimate.render(report["estimate"]))
    write_report(args.json, report)
    return EXIT_OK


def read_report(path: Path, kind: str) -> dict:
    """``--from-json``: a saved report, or a one-line error (exit code 3)."""
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(
            f"--from-json {path}: not a readable {kind} report ({exc})", EXIT_DATA
        ) from None
    if not isinstance(report, dict):
        raise UserError(f"--from-json {path}: not a {kind} report (no JSON object)", EXIT_DATA)
    return report


@contextlib.contextmanager
def using_report(option: str, path: Path | str, kind: str) -> Iterator[None]:
    """A report read from ``path`` (given with ``option``) used inside: a key it lacks or a
    value of the wrong type is a one-line data error naming the file, not a traceback."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        what = f"no {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise UserError(
            f"{option} {path}: not a complete {kind} report ({what})", EXIT_DATA
        ) from None


def set_threads(threads: int | None) -> None:
    """``--threads``: the CPU threads torch uses for the measurement (None: its choice)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def write_report(path: Path | None, report: dict) -> None:
    """``--json``: the report as JSON, when asked for."""
    if path is not None:
        path.write_text(json.dumps(report, indent=1) + "\n")


def _default_run(args: argparse.Namespace) -> int:
    from benchmark.perf import wallclock
    from benchmark.request import resolve_request

    given = [
        option
        for option, value in (
            ("--quick", args.quick),
            ("--estimate", args.estimate),
            ("--from-json", args.from_json),
            ("--classes", args.classes),
            ("--repeat", args.repeat),
        )
        if value
    ]
    if given:
        raise UserError(
            f"--default-run times the whole default run; it takes none of {', '.join(given)} "
            "(valid with it: --device, --threads, --json)"
        )
    set_threads(args.threads)
    registry = registry_for(args)

    def request_for(results: Path, cache_dir: Path):
        return resolve_request(registry, results=results, cache_dir=cache_dir, device=args.device)

    report = wallclock.time_default_run(
        request_for, registry, progress=lambda m: print(m, file=sys.stderr)
    )
    print(wallclock.render(report))
    write_report(args.json, report)
    return EXIT_CELLS_FAILED if report["failed"] else EXIT_OK


def _measure(args: argparse.Namespace, registry) -> dict:
    """Run the bench as the options ask, on ``registry``'s methods; the report."""
    from benchmark.backbone import BackboneSpec
    from benchmark.perf.bench import benchable, run_bench
    from benchmark.request import resolve_device

    device = resolve_device(args.device)
    valid = benchable(registry)
    unknown = [m for m in args.methods if m not in valid]
    if unknown:
        raise UserError(
            f"--methods: no reference-design step for {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(valid))}"
        )
    cuda = device.startswith("cuda")
    set_threads(args.threads)
    if args.quick:
        from benchmark.miniworld.model import CHECKPOINT, MODEL_NAME

        spec = BackboneSpec(MODEL_NAME, None, CHECKPOINT)
        classes, repeat, images, workers = args.classes or [10, 100], 1, 16, 0
    else:
        spec = BackboneSpec(args.backbone)
        classes = args.classes or ([10, 100, 1000] if cuda else [10, 100])
        repeat = args.repeat or (20 if cuda else 3)
        images, workers = args.images, args.workers
    return run_bench(
        spec,
        device,
        args.methods,
        classes,
        args.seeds_batched,
        images,
        workers,
        repeat,
        progress=lambda m: print(m, file=sys.stderr),
        registry=registry,
    )


COMMAND = Command(
    "bench",
    "training-step throughput: ours against the reference design",
    configure,
    run,
    description=DESCRIPTION,
    epilog=EPILOG,
)
