"""What a subcommand is, and the argument parser every subcommand uses."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from benchmark.errors import EXIT_USAGE, UserError


@dataclass(frozen=True)
class Command:
    """A subcommand: ``configure(parser)`` declares its options, ``run(args)`` returns the
    exit code. ``description`` and ``epilog`` (examples) are shown by ``--help``."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None
    epilog: str | None = None


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit code 2, without a usage dump."""

    def error(self, message: str):
        # argparse quotes some arguments raw ("unrecognized arguments: a<newline>b")
        one_line = message.replace("\r", "\\r").replace("\n", "\\n")
        raise UserError(f"{self.prog}: {one_line}", EXIT_USAGE)
