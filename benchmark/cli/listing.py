"""``python -m benchmark list``: the registered methods, protocols or datasets."""

from __future__ import annotations

import argparse

from benchmark.cli.command import Command
from benchmark.cli.options import registry_for
from benchmark.errors import EXIT_OK


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "what", nargs="?", default="methods", choices=["methods", "protocols", "datasets"]
    )


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    registry = registry_for(args)
    rows = []
    if args.what == "methods":
        for name in registry.methods:
            spec = registry.methods.get(name)
            titles = spec.titles()
            variants = ", ".join(f"{key} ({titles[key]})" for key in list(titles)[1:])
            provider = registry.methods.provider(name).distribution
            rows.append((name, titles[name], spec.summary, variants, provider))
        headers = ("method", "title", "summary", "variants", "provided by")
    elif args.what == "protocols":
        for name in registry.protocols:
            protocol = registry.protocols.get(name)
            shots = ",".join(map(str, protocol.default_shots))
            rows.append(
                (name, protocol.summary, shots, registry.protocols.provider(name).distribution)
            )
        headers = ("protocol", "summary", "default shots", "provided by")
    else:
        for name in registry.datasets:
            spec = registry.datasets.get(name)
            rows.append((name, spec.world, spec.role, spec.display_name, spec.template))
        headers = ("dataset", "world", "role", "title", "zero-shot template")
    print(tabulate(rows, headers=headers, tablefmt="simple"))
    return EXIT_OK


COMMAND = Command("list", "list methods, protocols or datasets", configure, run)
