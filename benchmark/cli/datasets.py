"""``python -m benchmark datasets check``: which standard datasets are present and complete."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.cli.command import Command, Parser
from benchmark.cli.options import registry_for
from benchmark.errors import EXIT_OK
from benchmark.request import STANDARD_WORLD, check_data_root


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="datasets_command", required=True, parser_class=Parser)
    check = actions.add_parser("check", help="report which datasets are present and complete")
    check.add_argument("--data-root", type=Path, required=True)
    check.add_argument("--format", default="table", choices=["table", "json"])


def run(args: argparse.Namespace) -> int:
    from benchmark.datasets.check import check, render

    registry = registry_for(args)
    check_data_root(args.data_root)
    specs = [
        registry.datasets.get(n)
        for n in registry.datasets
        if registry.datasets.get(n).world == STANDARD_WORLD
    ]
    print(render(check(args.data_root, specs), args.format))
    return EXIT_OK


COMMAND = Command("datasets", "inspect datasets", configure, run)
