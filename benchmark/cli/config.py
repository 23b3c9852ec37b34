"""``python -m benchmark config``: the resolved configuration of one cell, with its sources.

Shows what ``run`` would use for one (method, protocol, dataset, shots, seed): every field of
the method's config with the source of its value (the settings table's citation, a variant,
``--set``, or the config's default), the hand-written texts the method uses on that dataset,
and the run id. The configuration and the run id come from the same planned cell
(:func:`benchmark.planner.plan`), so they are what ``run`` would record. The run id includes
the fingerprint of the data the cell reads: without the data (a standard dataset without
``--data-root``) the configuration is shown and the run id is not.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from benchmark.cli.command import Command
from benchmark.cli.options import positive_int, registry_for
from benchmark.config import PRESETS
from benchmark.errors import EXIT_OK, DataError, UserError

EPILOG = """examples:
  python -m benchmark config prograd --protocol few_shot --dataset oxford_pets --shots 16
  python -m benchmark config coop:csc --protocol few_shot --dataset dtd --shots 4
  python -m benchmark config kgcoop --protocol base_to_new --dataset dtd --shots 16 \\
      --preset gcscoop --format json
  python -m benchmark config coop --protocol few_shot --dataset mini_shapes --shots 16 \\
      --set coop.epochs=5
"""

DEFAULT_SOURCE = "the config's default"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("method", help="a method, or method:variant")
    parser.add_argument("--protocol", required=True)
    parser.add_argument("--dataset", required=True, help="the dataset the cell trains on")
    parser.add_argument("--shots", type=positive_int, required=True)
    parser.add_argument("--seed", type=int, default=1, help="default 1 (the run id's seed)")
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        help="default: quick on the mini world, reference on real data",
    )
    parser.add_argument("--backbone", help="default: as for run")
    parser.add_argument("--pretrained", help="default: as for run")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--data-root", type=Path, help="where the standard datasets are")
    parser.add_argument(
        "--register",
        dest="user_datasets",
        action="append",
        default=[],
        metavar="NAME[@SOURCE]=PATH[:TEMPLATE]",
        help="your own dataset, as run's --dataset (then --dataset NAME shows its cell)",
    )
    parser.add_argument(
        "--cache-dir", type=Path, help="where the mini world is (default: as for run)"
    )
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="METHOD.FIELD=VALUE",
        help="override a field, as for run; repeatable",
    )
    parser.add_argument("--format", default="text", choices=["text", "json"])


def resolve(args: argparse.Namespace) -> dict:
    """The cell's configuration, sources, texts and run id, as a JSON-able dict."""
    from benchmark.catalog import DatasetCatalog
    from benchmark.datasets.spec import DataContext
    from benchmark.method import Setting
    from benchmark.planner import (
        method_of,
        overrides_of,
        plan,
        planning_warnings,
        variant_changes,
    )
    from benchmark.request import resolve_request

    registry = registry_for(args)
    request = resolve_request(
        registry,
        methods=[args.method],
        protocols=[args.protocol],
        datasets=[args.dataset],
        shots=[args.shots],
        seeds=[args.seed],
        backbone=args.backbone,
        pretrained=args.pretrained,
        checkpoint=args.checkpoint,
        data_root=args.data_root,
        cache_dir=args.cache_dir,
        preset=args.preset,
        sets=args.sets,
        device="cpu",
        require_data=False,
    )
    if len(request.methods) != 1 or len(request.datasets) != 1:
        raise UserError("config shows one cell: give one method and one dataset, no wildcards")
    context = DataContext(request.data_root, request.cache_dir)
    catalog = DatasetCatalog(registry.datasets, context, request.datasets)
    try:
        with planning_warnings():
            groups = plan(registry, request, catalog)
        missing = ""
    except DataError as exc:  # the data cannot be read: no run id
        groups, missing = plan(registry, request, catalog, read_data=False), str(exc)
    cells = [cell for group in groups for cell in group]
    if not cells:
        protocol = registry.protocols.get(args.protocol)
        raise UserError(
            f"{args.protocol} does not train on {args.dataset!r} ({protocol.summary}); "
            "give the dataset it trains on"
        )
    (cell,) = cells
    name = request.methods[0]
    method = method_of(registry, name)
    spec = catalog.spec(cell.dataset)
    setting = Setting(
        cell.protocol, cell.dataset, cell.shots, request.backbone.name, request.preset,
        spec.template,
    )  # fmt: skip
    sources = {f.name: DEFAULT_SOURCE for f in dataclasses.fields(cell.config)}
    sources.update(method.config_sources(setting))
    sources.update(dict.fromkeys(variant_changes(registry, name), f"variant {name}"))
    sources.update(dict.fromkeys(overrides_of(request.overrides, name), "--set"))
    return {
        "method": name,
        "protocol": cell.protocol,
        "dataset": cell.dataset,
        "shots": cell.shots,
        "seed": cell.seed,
        "preset": request.preset,
        "backbone": request.backbone.name,
        "pretrained": request.backbone.weights,
        "dataset_template": spec.template,
        "run_id": cell.run_id or None,
        "run_id_missing": missing,
        "config": dataclasses.asdict(cell.config),
        "sources": sources,
        "texts": method.texts(cell.config, setting),
    }


def render(report: dict) -> str:
    from tabulate import tabulate

    head = (
        f"{report['method']} · {report['protocol']} · {report['dataset']} · "
        f"{report['shots']} shots · seed {report['seed']} · {report['backbone']} "
        f"({report['pretrained']}) · preset {report['preset']}"
    )
    rows = [
        (field, json.dumps(value), report["sources"][field])
        for field, value in report["config"].items()
    ]
    texts = [("dataset template", report["dataset_template"])]
    for key, value in report["texts"].items():
        values = value if isinstance(value, list) else [value]
        texts += [(key if i == 0 else "", text) for i, text in enumerate(values)]
    run = report["run_id"] or f"- (it includes the data's fingerprint: {report['run_id_missing']})"
    return "\n\n".join(
        [
            f"{head}\nrun id: {run}",
            tabulate(rows, headers=("field", "value", "source"), tablefmt="simple"),
            tabulate(texts, headers=("text", "value"), tablefmt="simple"),
        ]
    )


def run(args: argparse.Namespace) -> int:
    report = resolve(args)
    print(json.dumps(report, indent=1) if args.format == "json" else render(report))
    return EXIT_OK


COMMAND = Command(
    "config",
    "the resolved configuration of one cell, each value with its source, and its run id",
    configure,
    run,
    epilog=EPILOG,
)
