"""Option types shared by the subcommands, and the registry their options ask for."""

from __future__ import annotations

import argparse
from pathlib import Path


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def csv_list(text: str) -> list[str]:
    """Comma-separated names, at least one (an empty list never means "all")."""
    items = _items(text)
    if not items:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return items


#: The largest seed or shot count: the results store them as 32-bit integers.
INT32_MAX = 2**31 - 1


def ints(text: str) -> list[int]:
    """Comma-separated integers, each once, in the order given."""
    try:
        values = [int(item) for item in _items(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return list(dict.fromkeys(values))


def seeds(text: str) -> list[int]:
    values = ints(text)
    if any(not 0 <= v <= INT32_MAX for v in values):
        raise argparse.ArgumentTypeError(
            f"seeds must be whole numbers from 0 to {INT32_MAX}, got {text!r}"
        )
    return values


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_ints(text: str) -> list[int]:
    values = ints(text)
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"shot counts must be at least 1, got {text!r}")
    if any(v > INT32_MAX for v in values):
        raise argparse.ArgumentTypeError(
            f"shot counts must be whole numbers from 1 to {INT32_MAX}, got {text!r}"
        )
    return values


def count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0, got {text!r}")
    return int(text)


def registry_for(args: argparse.Namespace):
    """The registry the options ask for: third-party plugins unless ``--no-plugin-autoload``,
    and the datasets given with ``--dataset``."""
    from benchmark.registry import build_registry

    extra = []
    if getattr(args, "user_datasets", None):
        from benchmark.datasets.imagefolder import UserDatasets, parse_dataset_options

        extra.append(UserDatasets(parse_dataset_options(args.user_datasets)))
    return build_registry(autoload=False if args.no_plugin_autoload else None, extra_plugins=extra)


def add_data_options(parser: argparse.ArgumentParser, datasets_help: str) -> None:
    """Where the data is and where to compute: ``--dataset`` (your own, repeatable),
    ``--data-root``, ``--cache-dir`` and ``--device``."""
    parser.add_argument(
        "--dataset",
        dest="user_datasets",
        action="append",
        default=[],
        metavar="NAME[@SOURCE]=PATH[:TEMPLATE]",
        help=datasets_help,
    )
    parser.add_argument(
        "--data-root", type=Path, help="folder holding the datasets in CoOp's layout"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="features and generated data "
        "(default: $VLPROMPT_BENCH_CACHE or ~/.cache/vlprompt-bench)",
    )
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")


def add_artifact_options(parser: argparse.ArgumentParser) -> None:
    """The options naming a saved run's artifact, and the backbone to read it with."""
    from benchmark.request import DEFAULT_RESULTS

    parser.add_argument("run_id", metavar="RUN_ID", help="the run, or the start of its id")
    parser.add_argument(
        "--results",
        type=Path,
        default=DEFAULT_RESULTS,
        help="the results folder holding artifacts/RUN_ID.safetensors (default: results)",
    )
    parser.add_argument("--backbone", help="default: the one the run was trained with")
    parser.add_argument("--pretrained", help="default: the weights the run was trained with")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="the weights file the run was trained with, if it has moved",
    )


def artifact_for(args: argparse.Namespace):
    """The artifact the options name (checked) and the backbone spec to read it with."""
    from benchmark import artifacts

    artifact = artifacts.load(artifacts.find(args.results, args.run_id))
    spec = artifacts.backbone_spec(artifact, args.backbone, args.pretrained, args.checkpoint)
    return artifact, spec
