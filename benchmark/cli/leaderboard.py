"""``python -m benchmark leaderboard``: tables, plots and an HTML page from the results."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.cli.command import Command
from benchmark.cli.options import csv_list, positive_ints, registry_for, seeds
from benchmark.errors import EXIT_ENVIRONMENT, EXIT_OK, UserError, warning_lines
from benchmark.leaderboard.layout import AVERAGE_H, MEAN_OF_H
from benchmark.request import DEFAULT_RESULTS

REFERENCE_BUILTIN = Path("<built-in>")

EPILOG = """examples:
  python -m benchmark leaderboard --results results/mini
  python -m benchmark leaderboard --reference                # the papers' numbers and Δ
  python -m benchmark leaderboard --average-h of-means       # CoCoOp's average H
  python -m benchmark leaderboard --plot plots --html leaderboard.html
  python -m benchmark leaderboard --results results/mini --reference \\
      --write results/LEADERBOARD.md                         # or --check: fail if stale
  python -m benchmark leaderboard --recipe prograd-iccv2023/table1   # the paper's table, Δ
  python -m benchmark leaderboard --recipe gcscoop/table1 --datasets dtd --seeds 1
"""

NARROWING = ("methods", "datasets", "shots", "seeds")
"""The options that narrow a recipe's table, as they narrow ``run --recipe``."""


def configure(board: argparse.ArgumentParser) -> None:
    board.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    board.add_argument("--protocol", help="only this protocol")
    board.add_argument(
        "--recipe",
        metavar="PAPER/TABLE",
        help="the table of a paper in its layout, from the runs of its recipe (`python -m "
        "benchmark recipes` lists them), with the published numbers and the differences; "
        "--methods, --datasets, --shots and --seeds narrow it",
    )
    board.add_argument("--methods", type=csv_list, help="with --recipe: only these methods")
    board.add_argument("--datasets", type=csv_list, help="with --recipe: only these datasets")
    board.add_argument("--shots", type=positive_ints, help="with --recipe: only these shots")
    board.add_argument("--seeds", type=seeds, help="with --recipe: only these seeds")
    board.add_argument("--format", default="github", choices=["github", "latex", "csv"])
    board.add_argument(
        "--reference",
        nargs="?",
        type=Path,
        const=REFERENCE_BUILTIN,
        metavar="FILE",
        help="show the papers' published numbers and measured − published under each method "
        "(default file: results/reference/published.csv; --recipe always shows them, from "
        "FILE where given)",
    )
    board.add_argument(
        "--average-h",
        default=MEAN_OF_H,
        choices=AVERAGE_H,
        help="the average H over datasets: the mean of the per-dataset H (default, as ProGrad "
        "and GCSCoOp print it) or H of the averaged base and new (CoCoOp, KgCoOp, MaPLe)",
    )
    board.add_argument("--plot", type=Path, metavar="DIR", help="also write the plots as PNG")
    board.add_argument(
        "--html", type=Path, metavar="FILE", help="also write a self-contained HTML page"
    )
    written = board.add_mutually_exclusive_group()
    written.add_argument(
        "--write", type=Path, metavar="FILE", help="write the leaderboard to FILE, not stdout"
    )
    written.add_argument(
        "--check",
        type=Path,
        metavar="FILE",
        help="exit 1 if FILE differs from what --write FILE would write (a stale leaderboard)",
    )


def results_table(results: Path):
    from benchmark.results import ResultStore

    table = ResultStore(results).read().to_pandas()
    if table.empty:
        raise UserError(f"no results in {results}; run `python -m benchmark run` first")
    return table


def _titles(registry) -> dict[str, str]:
    return {n: registry.datasets.get(n).display_name for n in registry.datasets}


def _published(reference: Path | None):
    if reference is None:
        return None
    from benchmark.reference import load

    return load(None if reference == REFERENCE_BUILTIN else reference)


def board_of(table, protocol: str | None, registry, published=None, average_h: str = MEAN_OF_H):
    """The leaderboard of a result table with the registry's protocols and display names."""
    from benchmark.leaderboard.board import build_board

    if protocol is not None:
        registry.protocols.get(protocol)
    with warning_lines():
        return build_board(
            table,
            protocol,
            _titles(registry),
            method_titles=registry.method_titles(),
            protocols=registry.protocol_objects(),
            reference=published,
            average_h=average_h,
        )


def leaderboard_text(
    table,
    protocol: str | None,
    fmt: str,
    registry,
    published=None,
    average_h: str = MEAN_OF_H,
) -> str:
    """The leaderboard as text in ``fmt``."""
    from benchmark.leaderboard.text import render_board

    return render_board(board_of(table, protocol, registry, published, average_h), fmt)


def _regenerate_command(args: argparse.Namespace, target: Path) -> str:
    """The ``leaderboard`` command that writes ``target`` as these options do."""
    command = ["python -m benchmark leaderboard", f"--results {args.results.as_posix()}"]
    if args.protocol:
        command.append(f"--protocol {args.protocol}")
    if args.recipe:
        command.append(f"--recipe {args.recipe}")
    for option in NARROWING:
        values = getattr(args, option)
        if values:
            command.append(f"--{option} {','.join(map(str, values))}")
    if args.format != "github":
        command.append(f"--format {args.format}")
    if args.average_h != MEAN_OF_H:
        command.append(f"--average-h {args.average_h}")
    if args.reference == REFERENCE_BUILTIN:
        command.append("--reference")
    elif args.reference is not None:
        command.append(f"--reference {args.reference.as_posix()}")
    command.append(f"--write {target.as_posix()}")
    return " ".join(command)


def _generated_by(args: argparse.Namespace, target: Path) -> str:
    """The first line of a written leaderboard: the command that regenerates it."""
    text = f"Generated by `{_regenerate_command(args, target)}`; do not edit."
    return {"github": f"<!-- {text} -->", "latex": f"% {text}", "csv": f"# {text}"}[args.format]


def _check_options(args: argparse.Namespace) -> None:
    """Refuse options that do not go together before any work."""
    if args.recipe is None:
        for option in NARROWING:
            if getattr(args, option):
                raise UserError(f"--{option}: only with --recipe NAME (it narrows a recipe)")
        return
    if args.protocol:
        raise UserError("--protocol: not with --recipe (the recipe names its protocol)")
    if args.average_h != MEAN_OF_H:
        raise UserError(
            f"--average-h {args.average_h}: not with --recipe (a recipe's table prints the "
            "papers' average H, the mean of the per-dataset H)"
        )


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse output paths of the wrong kind before any work."""
    if args.plot is not None and args.plot.exists() and not args.plot.is_dir():
        raise UserError(f"--plot {args.plot}: exists and is not a folder; give a folder")
    for option, path in (("--write", args.write), ("--check", args.check), ("--html", args.html)):
        if path is not None and path.is_dir():
            raise UserError(f"{option} {path}: is a folder; give a file")


def _write_text(target: Path, text: str) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {target} ({exc.strerror})", EXIT_ENVIRONMENT) from exc


def _current(target: Path) -> str | None:
    """The text of a leaderboard file to check, or None when there is none."""
    try:
        return target.read_bytes().decode("utf-8", "replace") if target.is_file() else None
    except OSError as exc:
        raise UserError(f"cannot read {target} ({exc.strerror})", EXIT_ENVIRONMENT) from exc


def recipe_board_of(args: argparse.Namespace, table, registry):
    """The table of ``--recipe`` (narrowed by the options), the results it shows (their
    ``method`` column naming the paper's rows) and the display names of those rows."""
    from benchmark.leaderboard.recipe import paper_rows, recipe_board, row_titles, select_runs
    from benchmark.recipes import load, narrow, recipe_cells

    recipe = narrow(
        load().get(args.recipe),
        methods=args.methods,
        datasets=args.datasets,
        shots=args.shots,
        seeds=args.seeds,
    )
    published = _published(args.reference or REFERENCE_BUILTIN)
    cells = recipe_cells(registry, recipe)
    selected = select_runs(table, cells)
    if selected.empty:
        raise UserError(
            f"no runs of recipe {recipe.name} in {args.results}: run `python -m benchmark run "
            f"--recipe {recipe.name} --data-root DIR` first"
        )
    method_titles = registry.method_titles()
    with warning_lines():
        found = recipe_board(
            selected,
            recipe,
            cells,
            published,
            protocols=registry.protocol_objects(),
            titles=_titles(registry),
            method_titles=method_titles,
        )
    return found, selected, row_titles(paper_rows(recipe, published), method_titles)


def run(args: argparse.Namespace) -> int:
    from benchmark.leaderboard.text import render_board

    _check_options(args)
    _check_outputs(args)
    registry = registry_for(args)
    table = results_table(args.results)
    if args.recipe:
        found, table, method_titles = recipe_board_of(args, table, registry)
    else:
        found = board_of(table, args.protocol, registry, _published(args.reference), args.average_h)
        method_titles = registry.method_titles()
    text = render_board(found, args.format)
    target = args.write or args.check
    if target is None:
        print(text)
    else:
        text = f"{_generated_by(args, target)}\n\n{text}"
        if args.check:
            current = _current(target)
            if current != text:
                state = "missing" if current is None else "stale"
                command = _regenerate_command(args, target)
                raise UserError(f"{target} is {state}: regenerate it with `{command}`", 1)
            print(f"{target} is up to date", file=sys.stderr)
        else:
            _write_text(target, text)
            print(f"wrote {target}", file=sys.stderr)
    if args.plot or args.html:
        _write_figures(args, registry, table, found, method_titles)
    return EXIT_OK


def _write_figures(args: argparse.Namespace, registry, table, found, method_titles) -> None:
    from benchmark.plots import plots, write_plots

    if args.protocol is not None:
        table = table[table["protocol"] == args.protocol]
    with warning_lines():
        figures = plots(
            table,
            _titles(registry),
            method_titles=method_titles,
            protocols=registry.protocol_objects(),
            average_h=args.average_h,
        )
    if args.plot:
        try:
            written = write_plots(figures, args.plot)
        except OSError as exc:
            raise UserError(
                f"cannot write plots to {args.plot} ({exc.strerror})", EXIT_ENVIRONMENT
            ) from exc
        print(f"wrote {len(written)} plots to {args.plot}", file=sys.stderr)
    if args.html:
        from benchmark.webpage import page

        _write_text(args.html, page(found, figures, notes=[f"Results: {args.results}"]))
        print(f"wrote {args.html}", file=sys.stderr)


COMMAND = Command("leaderboard", "tables of mean ± std over seeds", configure, run, epilog=EPILOG)
