"""``python -m benchmark eval``: a saved run's classifier on the test split of any dataset."""

from __future__ import annotations

import argparse
import sys

from benchmark.cli.command import Command
from benchmark.cli.options import (
    add_artifact_options,
    add_data_options,
    artifact_for,
    csv_list,
    registry_for,
)
from benchmark.errors import EXIT_OK

EPILOG = """examples:
  python -m benchmark eval 3f1c9a0b2d                    # on the dataset it was trained on
  python -m benchmark eval 3f1c9a0b2d --datasets 'mini_*'
  python -m benchmark eval 3f1c9a0b2d --dataset birds=~/data/birds
  python -m benchmark eval 3f1c9a0b2d --data-root ~/data --datasets imagenetv2,imagenet_sketch

Each dataset's result is a run of protocol `eval` in RESULTS/runs (its `artifact` column names
the artifact); evaluating the same artifact on the same data again does nothing.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    add_artifact_options(parser)
    parser.add_argument(
        "--datasets",
        type=csv_list,
        help="comma-separated, wildcards allowed (default: the datasets given with --dataset, "
        "else the one the run was trained on)",
    )
    add_data_options(
        parser,
        "your own dataset, repeatable, as for run (an ImageFolder folder or a CoOp split "
        "file; its test split is evaluated)",
    )


def run(args: argparse.Namespace) -> int:
    from benchmark.evaluation import EvalRequest, evaluate
    from benchmark.request import check_data_root, default_cache_dir, resolve_device

    artifact, backbone = artifact_for(args)
    registry = registry_for(args)
    check_data_root(args.data_root)
    request = EvalRequest(
        datasets=args.datasets,
        results=args.results,
        cache_dir=args.cache_dir or default_cache_dir(),
        data_root=args.data_root,
        device=resolve_device(args.device),
        backbone=backbone,
    )
    summary = evaluate(registry, artifact, request, lambda m: print(m, file=sys.stderr))
    print(
        f"datasets evaluated: {len(summary.written)}, already done: {len(summary.done)}, with "
        f"classes this run cannot score: {len(summary.unscorable)}; rows written to "
        f"{args.results}: {summary.rows}",
        file=sys.stderr,
    )
    return EXIT_OK


COMMAND = Command(
    "eval",
    "evaluate a saved run (its artifact) on the test split of any dataset",
    configure,
    run,
    epilog=EPILOG,
)
