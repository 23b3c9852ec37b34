"""``python -m benchmark``: one module per subcommand over the Python API.

Each subcommand is a :class:`Command`: its name, its help, a function that declares its
options on an argparse parser, and a function that runs it. :data:`COMMANDS` lists the modules
that define them; :func:`build_parser` asks each for its options and :func:`main` dispatches,
turning every :class:`~benchmark.errors.UserError` into one line on stderr and its exit code.
Command modules import nothing heavy at module level: ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from benchmark.cli.command import Command, Parser
from benchmark.errors import UserError

#: The modules defining the subcommands, in the order ``--help`` lists them.
COMMANDS = (
    "benchmark.cli.listing",
    "benchmark.cli.run",
    "benchmark.cli.leaderboard",
    "benchmark.cli.datasets",
    "benchmark.cli.config",
    "benchmark.cli.recipes",
    "benchmark.perf.command",
)


def commands() -> list[Command]:
    return [importlib.import_module(module).COMMAND for module in COMMANDS]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m benchmark",
        description="Prompt learning on CLIP-like models: methods x protocols x datasets.",
    )
    parser.add_argument(
        "--no-plugin-autoload",
        action="store_true",
        help="load only the suite's own plugins, not third-party ones found through entry "
        "points (same as VLPROMPT_BENCH_DISABLE_PLUGIN_AUTOLOAD=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in commands():
        command.configure(
            sub.add_parser(
                command.name,
                help=command.help,
                description=command.description or command.help,
                epilog=command.epilog,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        )
        sub.choices[command.name].set_defaults(handler=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.handler(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(
            "interrupted; finished runs are saved, run the same command to continue",
            file=sys.stderr,
        )
        return 130
