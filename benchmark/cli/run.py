"""``python -m benchmark run``: a matrix of methods x protocols x datasets x shots x seeds."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.cli.command import Command
from benchmark.cli.options import (
    add_data_options,
    count,
    csv_list,
    positive_ints,
    registry_for,
    seeds,
)
from benchmark.config import PRESETS
from benchmark.errors import EXIT_CELLS_FAILED, EXIT_OK, UserError
from benchmark.request import DEFAULT_RESULTS

EPILOG = """examples:
  python -m benchmark run                                  # the offline mini world, every method
  python -m benchmark run --methods zeroshot,coop --protocols few_shot --shots 1,16
  python -m benchmark run --data-root ~/data --datasets oxford_pets,dtd --seeds 1,2,3 \\
      --backbone ViT-B-16 --pretrained openai --device cuda
  python -m benchmark run --methods coop --set coop.epochs=10 --set coop.n_ctx=4
  python -m benchmark run --dataset pets=~/pets --dataset "birds=~/birds/split.json:a bird, {}."
  python -m benchmark run --recipe prograd-iccv2023/table1 --data-root ~/data --device cuda
  python -m benchmark run --recipe gcscoop/table1 --data-root ~/data --datasets dtd --seeds 1
"""


def configure(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--recipe",
        metavar="PAPER/TABLE",
        help="run the matrix of a published table (`python -m benchmark recipes` lists them); "
        "--methods, --datasets, --shots and --seeds narrow it, options that would change it "
        "are refused",
    )
    run.add_argument(
        "--methods", type=csv_list, help="comma-separated, wildcards allowed (default: all)"
    )
    run.add_argument("--protocols", type=csv_list, help="comma-separated (default: all)")
    run.add_argument(
        "--datasets",
        type=csv_list,
        help="comma-separated (default: the mini world, or "
        "every standard dataset when --data-root is given)",
    )
    add_data_options(
        run,
        "your own dataset, repeatable: an ImageFolder folder (train/<class>/, "
        "test/<class>/, optional val/<class>/) or a CoOp split file SPLIT.json[:IMAGEDIR]; "
        "TEMPLATE is its zero-shot prompt with {} for the class name (default: 'a photo of "
        "a {}.'); the first is the source of cross-dataset runs, the others its targets; "
        "NAME@SOURCE is a domain-shifted version of SOURCE; without --datasets, only these "
        "datasets run",
    )
    run.add_argument("--shots", type=positive_ints, help="e.g. 1,2,4,8,16 (default: per protocol)")
    run.add_argument(
        "--seeds", type=seeds, help="0 to 2147483647 (default: 1 on the mini world, else 1,2,3)"
    )
    run.add_argument(
        "--backbone", help="open_clip model name (default: ViT-B-16; mini world: its own tiny CLIP)"
    )
    run.add_argument("--pretrained", help="open_clip pretrained tag (default: openai)")
    run.add_argument("--checkpoint", type=Path, help="a local weights file instead of --pretrained")
    run.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="default: results")
    run.add_argument(
        "--preset",
        choices=PRESETS,
        help="reference: each method's official settings (default on real data); quick: short "
        "runs (default on the mini world); prograd-iccv2023, gcscoop: the settings under which "
        "that paper's tables ran (`python -m benchmark config` shows them)",
    )
    run.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="METHOD.FIELD=VALUE",
        help="override a method's config field; repeatable",
    )
    run.add_argument("--rerun", action="store_true", help="run cells even if results exist")
    run.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="local: the groups one after the other in this process (default); ray: one Ray "
        "task per group, one GPU (or CPU) each",
    )
    run.add_argument(
        "--address",
        help="with --executor ray: an existing Ray cluster (auto, host:port or "
        "ray://host:port); default: start a local Ray instance",
    )
    run.add_argument(
        "--retries",
        type=count,
        default=0,
        metavar="N",
        help="run a failed group again up to N times in the same run (default 0)",
    )
    run.add_argument("--no-leaderboard", action="store_true", help="do not print the leaderboard")
    run.add_argument(
        "--no-artifacts",
        action="store_true",
        help="do not save the runs' learned tensors (default: each trained run's context, "
        "meta-net or probe weights go to RESULTS/artifacts/RUN_ID.safetensors)",
    )


def operational(args: argparse.Namespace) -> dict:
    """The ``run`` options that say where and how to run, not what: the data, results and
    cache folders, the device, reruns and retries."""
    return dict(
        data_root=args.data_root,
        results=args.results,
        cache_dir=args.cache_dir,
        device=args.device,
        rerun=args.rerun,
        retries=args.retries,
        artifacts=not args.no_artifacts,
    )


def request_from(args: argparse.Namespace, registry):
    """The :class:`~benchmark.request.RunRequest` of these ``run`` options."""
    from benchmark.request import resolve_request

    return resolve_request(
        registry,
        methods=args.methods,
        protocols=args.protocols,
        datasets=args.datasets,
        shots=args.shots,
        seeds=args.seeds,
        backbone=args.backbone,
        pretrained=args.pretrained,
        checkpoint=args.checkpoint,
        preset=args.preset,
        sets=args.sets,
        **operational(args),
    )


def recipe_runner(args: argparse.Namespace, registry, progress):
    """The runner of ``--recipe``: the recipe's matrix, narrowed by ``--methods``,
    ``--datasets``, ``--shots`` and ``--seeds``; an option that would change the matrix is a
    one-line error naming the recipe's value."""
    from benchmark.recipes import RecipeRunner, load, narrow, recipe_request

    recipe = load().get(args.recipe)
    fixed = (
        ("--protocols", args.protocols, [recipe.protocol], recipe.protocol),
        ("--backbone", args.backbone, recipe.backbone, recipe.backbone),
        ("--pretrained", args.pretrained, recipe.pretrained, recipe.pretrained),
        ("--preset", args.preset, recipe.preset, recipe.preset),
    )
    for option, given, value, shown in fixed:
        if given is not None and given != value:
            raise UserError(
                f"{option} {','.join(given) if isinstance(given, list) else given}: recipe "
                f"{recipe.name} runs {option.lstrip('-')} {shown} (a recipe is its table's matrix)"
            )
    changing = (
        ("--checkpoint", args.checkpoint, f"the {recipe.pretrained} weights of {recipe.backbone}"),
        ("--set", args.sets, f"the {recipe.preset} preset's settings"),
        ("--dataset", args.user_datasets, f"the datasets {', '.join(recipe.datasets)}"),
    )
    for option, given, what in changing:
        if given:
            raise UserError(
                f"{option}: recipe {recipe.name} runs {what} (a recipe is its table's matrix)"
            )
    if args.data_root is None:
        raise UserError(
            f"--recipe {recipe.name} needs --data-root DIR holding its datasets in CoOp's "
            f"layout ({', '.join(recipe.datasets)})"
        )
    recipe = narrow(
        recipe, methods=args.methods, datasets=args.datasets, seeds=args.seeds, shots=args.shots
    )
    request = recipe_request(registry, recipe, **operational(args))
    return RecipeRunner(registry, recipe, request, progress)


def _executor(args: argparse.Namespace):
    """The executor of ``run``: None (local) or a Ray executor."""
    if args.executor == "local":
        if args.address:
            raise UserError("--address is for --executor ray")
        return None
    from benchmark.ray_executor import RayExecutor

    return RayExecutor(args.address)


def run(args: argparse.Namespace) -> int:
    from benchmark.cli.leaderboard import leaderboard_text, results_table
    from benchmark.runner import Runner

    executor = _executor(args)
    registry = registry_for(args)

    def progress(message: str) -> None:
        print(message, file=sys.stderr)

    if args.recipe:
        runner = recipe_runner(args, registry, progress)
    else:
        runner = Runner(registry, request_from(args, registry), progress=progress)
    request = runner.request
    summary = runner.run(executor)
    if not summary.planned:
        raise UserError(
            f"nothing to run: protocols {', '.join(request.protocols)} train on none of the "
            f"datasets {', '.join(request.datasets)} (cross-dataset and domain generalisation "
            "train on the source dataset of the selected datasets' world)"
        )
    held = f", {len(summary.held)} held by another runner" if summary.held else ""
    print(
        f"{summary.succeeded} runs done, {summary.skipped} skipped (already in "
        f"{request.results}){held}, {len(summary.failed)} failed; {summary.rows} rows written",
        file=sys.stderr,
    )
    if not args.no_leaderboard and (summary.succeeded or summary.skipped):
        print(leaderboard_text(results_table(request.results), None, "github", registry))
    for cell, holder in summary.held:
        print(
            f"held: {_cell(cell)}: claimed by a runner still running ({holder}); run the same "
            "command when it ends, or delete the claim if that runner is gone",
            file=sys.stderr,
        )
    for cell, message in summary.failed:
        print(f"failed: {_cell(cell)}: {message}", file=sys.stderr)
    return EXIT_CELLS_FAILED if summary.failed or summary.held else EXIT_OK


def _cell(cell) -> str:
    return f"{cell.method} {cell.protocol} {cell.dataset} {cell.shots} shots seed {cell.seed}"


COMMAND = Command(
    "run",
    "run a matrix of methods x protocols x datasets x shots x seeds",
    configure,
    run,
    epilog=EPILOG,
)
