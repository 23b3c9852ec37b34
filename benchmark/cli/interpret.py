"""``python -m benchmark inspect``: a saved run's learned context read as its nearest words."""

from __future__ import annotations

import argparse
import json

from benchmark.cli.command import Command
from benchmark.cli.options import add_artifact_options, artifact_for, positive_int
from benchmark.errors import EXIT_OK

EPILOG = """examples:
  python -m benchmark inspect 3f1c9a0b2d
  python -m benchmark inspect 3f1c9a0b2d --top 10 --format json

For each learned context vector, the K vocabulary tokens nearest to it by Euclidean distance
in the text encoder's token-embedding space (CoOp's interpret_prompt.py); CoCoOp's context
is read without the meta-net's image-conditioned shift.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    add_artifact_options(parser)
    parser.add_argument(
        "--top", type=positive_int, default=5, metavar="K", help="tokens per vector (default 5)"
    )
    parser.add_argument("--format", default="text", choices=["text", "json"])


def run(args: argparse.Namespace) -> int:
    from benchmark import artifacts
    from benchmark.backbone import Backbone
    from benchmark.interpretation import read, render, report

    artifact, spec = artifact_for(args)
    artifacts.check_backbone(artifact, spec)
    backbone = Backbone(spec, "cpu")
    data = report(artifact, read(artifact, backbone, args.top), args.top)
    print(json.dumps(data, indent=1) if args.format == "json" else render(data))
    return EXIT_OK


COMMAND = Command(
    "inspect",
    "read a saved run's learned context as its nearest vocabulary tokens",
    configure,
    run,
    epilog=EPILOG,
)
