"""``python -m benchmark``: one module per subcommand over the Python API.

Each subcommand is a :class:`Command`: its name, its help, a function that declares its
options on an argparse parser, and a function that runs it. :data:`COMMANDS` lists the modules
that define them; :func:`build_parser` asks each for its options and :func:`main` dispatches,
turning every :class:`~benchmark.errors.UserError` into one line on stderr and its exit code,
and output to a closed pipe into a quiet end with the exit code of SIGPIPE.
Command modules import nothing heavy at module level: ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence

from benchmark.cli.command import Command, Parser
from benchmark.errors import EXIT_BROKEN_PIPE, UserError

#: The modules defining the subcommands, in the order ``--help`` lists them.
COMMANDS = (
    "benchmark.cli.listing",
    "benchmark.cli.run",
    "benchmark.cli.leaderboard",
    "benchmark.cli.datasets",
    "benchmark.cli.config",
    "benchmark.cli.evaluate",
    "benchmark.cli.interpret",
    "benchmark.cli.recipes",
    "benchmark.perf.command",
    "benchmark.perf.doctor_command",
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
    """Run one command; its exit code (the README's table)."""
    try:
        return _dispatch(argv)
    except BrokenPipeError:
        # The reader of our output is gone (`... | head`): end quietly, as a tool killed by
        # SIGPIPE does, and keep the interpreter's last flush from failing again.
        _discard_output()
        return EXIT_BROKEN_PIPE


def _dispatch(argv: Sequence[str] | None) -> int:
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:  # --help and --version print, then exit
            sys.stdout.flush()
            raise
        code = args.handler(args)
        sys.stdout.flush()  # a closed stdout shows here, not at the interpreter's exit
        return code
    except UserError as exc:
        # one line even when the message quotes a name holding a line break
        message = str(exc).replace("\r", "\\r").replace("\n", "\\n")
        print(f"error: {message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(
            "interrupted; finished runs are saved, run the same command to continue",
            file=sys.stderr,
        )
        return 130


def _discard_output() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        # a stream that is no real file (a test's capture) is not flushed at exit anyway
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, stream.fileno())
    os.close(devnull)
