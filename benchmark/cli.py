"""``python -m benchmark``: list, run, leaderboard, datasets check.

A thin layer over the Python API: argument parsing, defaults, and one-line errors.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmark.errors import EXIT_CELLS_FAILED, EXIT_DATA, EXIT_OK, EXIT_USAGE, UserError

DEFAULT_RESULTS = Path("results")
REFERENCE_BUILTIN = Path("<built-in>")
MINI_WORLD = "mini"
STANDARD_WORLD = "standard"
STANDARD_BACKBONE = ("ViT-B-16", "openai")

EPILOG_RUN = """examples:
  python -m benchmark run                                  # the offline mini world, every method
  python -m benchmark run --methods zeroshot,coop --protocols few_shot --shots 1,16
  python -m benchmark run --data-root ~/data --datasets oxford_pets,dtd --seeds 1,2,3 \\
      --backbone ViT-B-16 --pretrained openai --device cuda
  python -m benchmark run --methods coop --set coop.epochs=10 --set coop.n_ctx=4
  python -m benchmark run --dataset pets=~/pets --dataset "birds=~/birds/split.json:a bird, {}."
"""

EPILOG_LEADERBOARD = """examples:
  python -m benchmark leaderboard --results results/mini
  python -m benchmark leaderboard --reference                # the papers' numbers and Δ
  python -m benchmark leaderboard --plot plots --html leaderboard.html
  python -m benchmark leaderboard --results results/mini --reference \\
      --write results/LEADERBOARD.md                         # or --check: fail if stale
"""

EPILOG_BENCH = """examples:
  python -m benchmark bench --quick                          # checks that the bench runs
  python -m benchmark bench --device cuda --estimate --json bench.json
  python -m benchmark bench --default-run --json default-run.json   # the whole default run
"""


def default_cache_dir() -> Path:
    env = os.environ.get("VLPROMPT_BENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "vlprompt-bench"


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _ints(text: str) -> list[int]:
    try:
        values = [int(item) for item in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_ints(text: str) -> list[int]:
    values = _ints(text)
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"shot counts must be at least 1, got {text!r}")
    return values


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0, got {text!r}")
    return int(text)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit code 2, no usage dump
        # argparse quotes some arguments raw ("unrecognized arguments: a<newline>b")
        one_line = message.replace("\r", "\\r").replace("\n", "\\n")
        raise UserError(f"{self.prog}: {one_line}", EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m benchmark",
        description="Prompt learning on CLIP-like models: methods x protocols x datasets.",
    )
    parser.add_argument(
        "--no-plugin-autoload",
        action="store_true",
        help="load only the suite's own plugins, not third-party ones found through entry "
        "points (same as VLPROMPT_BENCH_DISABLE_PLUGIN_AUTOLOAD=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    lister = sub.add_parser("list", help="list methods, protocols or datasets")
    lister.add_argument(
        "what", nargs="?", default="methods", choices=["methods", "protocols", "datasets"]
    )

    run = sub.add_parser(
        "run",
        help="run a matrix of methods x protocols x datasets x shots x seeds",
        epilog=EPILOG_RUN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--methods", type=_csv, help="comma-separated, wildcards allowed (default: all)"
    )
    run.add_argument("--protocols", type=_csv, help="comma-separated (default: all)")
    run.add_argument(
        "--datasets",
        type=_csv,
        help="comma-separated (default: the mini world, or "
        "every standard dataset when --data-root is given)",
    )
    run.add_argument(
        "--dataset",
        dest="user_datasets",
        action="append",
        default=[],
        metavar="NAME[@SOURCE]=PATH[:TEMPLATE]",
        help="your own dataset, repeatable: an ImageFolder folder (train/<class>/, "
        "test/<class>/, optional val/<class>/) or a CoOp split file SPLIT.json[:IMAGEDIR]; "
        "TEMPLATE is its zero-shot prompt with {} for the class name (default: 'a photo of "
        "a {}.'); the first is the source of cross-dataset runs, the others its targets; "
        "NAME@SOURCE is a domain-shifted version of SOURCE; without --datasets, only these "
        "datasets run",
    )
    run.add_argument("--shots", type=_positive_ints, help="e.g. 1,2,4,8,16 (default: per protocol)")
    run.add_argument("--seeds", type=_ints, help="default: 1 on the mini world, else 1,2,3")
    run.add_argument(
        "--backbone", help="open_clip model name (default: ViT-B-16; mini world: its own tiny CLIP)"
    )
    run.add_argument("--pretrained", help="open_clip pretrained tag (default: openai)")
    run.add_argument("--checkpoint", type=Path, help="a local weights file instead of --pretrained")
    run.add_argument("--data-root", type=Path, help="folder holding the datasets in CoOp's layout")
    run.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="default: results")
    run.add_argument(
        "--cache-dir",
        type=Path,
        help="features and generated data "
        "(default: $VLPROMPT_BENCH_CACHE or ~/.cache/vlprompt-bench)",
    )
    run.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    run.add_argument(
        "--preset",
        choices=["reference", "quick"],
        help="reference: the papers' epochs (default on real data); quick: short "
        "runs (default on the mini world)",
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
        type=_count,
        default=0,
        metavar="N",
        help="run a failed group again up to N times in the same run (default 0)",
    )
    run.add_argument("--no-leaderboard", action="store_true", help="do not print the leaderboard")

    board = sub.add_parser(
        "leaderboard",
        help="tables of mean ± std over seeds",
        epilog=EPILOG_LEADERBOARD,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    board.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    board.add_argument("--protocol", help="only this protocol")
    board.add_argument("--format", default="github", choices=["github", "latex", "csv"])
    board.add_argument(
        "--reference",
        nargs="?",
        type=Path,
        const=REFERENCE_BUILTIN,
        metavar="FILE",
        help="show the papers' published numbers and measured − published under each method "
        "(default file: results/reference/published.csv)",
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

    bench = sub.add_parser(
        "bench",
        help="training-step throughput: ours against the reference design",
        description="Times, side by side on the same model, a reference-design training step\n"
        "and ours, for each method and class count; feature extraction throughput; and the\n"
        "text encoder's achieved TFLOP/s. Random weights: nothing is downloaded.\n"
        "With --default-run: the wall time of `python -m benchmark run` without arguments\n"
        "instead, from a cold cache, by phase.",
        epilog=EPILOG_BENCH,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument("--backbone", default="ViT-B-16", help="open_clip model (default ViT-B-16)")
    bench.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    bench.add_argument(
        "--methods",
        type=_csv,
        default=["coop", "cocoop", "prograd", "kgcoop", "gcscoop"],
        help="comma-separated (default: coop,cocoop,prograd,kgcoop,gcscoop; also scoop)",
    )
    bench.add_argument(
        "--classes",
        type=_positive_ints,
        help="class counts (default: 10,100,1000 on CUDA, 10,100 on the CPU)",
    )
    bench.add_argument(
        "--seeds-batched",
        type=_positive_int,
        default=3,
        help="runs batched in our step (default 3: the papers' seeds, which the runner "
        "trains together)",
    )
    bench.add_argument(
        "--images", type=_positive_int, default=256, help="JPEG files for extraction"
    )
    bench.add_argument(
        "--workers",
        type=_count,
        default=min(8, os.cpu_count() or 1),
        help="data-loader workers of the extraction (default: min(8, CPU cores))",
    )
    bench.add_argument(
        "--repeat",
        type=_positive_int,
        help="timed reference steps, and extra epochs of ours, per figure (default: 3 on the "
        "CPU, 20 on CUDA)",
    )
    bench.add_argument(
        "--threads",
        type=_positive_int,
        help="CPU threads for torch (default: torch's choice; 1 times more steadily on a "
        "shared machine)",
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help="the mini world's tiny CLIP, 10 and 100 classes, few repeats: a check "
        "that the bench runs, not a measurement",
    )
    bench.add_argument(
        "--default-run",
        action="store_true",
        help="instead: time `python -m benchmark run` without arguments (the mini world, "
        "every method and protocol) from a cold cache in a temporary folder, by phase",
    )
    bench.add_argument("--json", type=Path, help="also write the report as JSON")
    bench.add_argument(
        "--estimate",
        action="store_true",
        help="also estimate the device hours of the papers' few-shot and base-to-new "
        "matrices, ours against the reference design",
    )
    bench.add_argument(
        "--from-json",
        type=Path,
        metavar="FILE",
        help="measure nothing: read a report written by --json (e.g. on a GPU) and print it "
        "(with --estimate, its estimate)",
    )

    datasets = sub.add_parser("datasets", help="inspect datasets")
    dsub = datasets.add_subparsers(dest="datasets_command", required=True, parser_class=_Parser)
    check = dsub.add_parser("check", help="report which datasets are present and complete")
    check.add_argument("--data-root", type=Path, required=True)
    check.add_argument("--format", default="table", choices=["table", "json"])
    return parser


# -- commands ---------------------------------------------------------------------------------


def _registry(args):
    from benchmark.registry import build_registry

    extra = []
    if getattr(args, "user_datasets", None):
        from benchmark.datasets.imagefolder import UserDatasets, parse_dataset_options

        extra.append(UserDatasets(parse_dataset_options(args.user_datasets)))
    return build_registry(autoload=False if args.no_plugin_autoload else None, extra_plugins=extra)


def cmd_list(args) -> int:
    registry = _registry(args)
    rows = []
    if args.what == "methods":
        for name in registry.methods:
            spec = registry.methods.get(name)
            variants = ", ".join(f"{name}:{v}" for v in spec.variants)
            rows.append(
                (name, spec.summary, variants, registry.methods.provider(name).distribution)
            )
        headers = ("method", "summary", "presets", "provided by")
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
    from tabulate import tabulate

    print(tabulate(rows, headers=headers, tablefmt="simple"))
    return EXIT_OK


def _worlds(registry, names: Sequence[str]) -> set[str]:
    return {registry.datasets.get(n).world for n in names}


def _select_methods(registry, patterns: Sequence[str]) -> list[str]:
    """Method names matching the patterns; ``name:preset`` selects a preset (checked when
    the method's config is built)."""
    from benchmark.runner import split_variant

    chosen: list[str] = []
    for pattern in patterns:
        base, variant = split_variant(pattern)
        names = registry.methods.select([base])
        chosen.extend(n if variant is None else f"{n}:{variant}" for n in names)
    return list(dict.fromkeys(chosen))


def _device(asked: str | None) -> str:
    """The ``--device`` asked for (checked), else cuda when available, else cpu."""
    if asked is None:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if asked not in ("cpu", "cuda") and not asked.startswith("cuda:"):
        raise UserError(f"--device {asked!r}: valid devices are cpu, cuda, cuda:N")
    return asked


def resolve_request(args, registry):
    """Fill the defaults of ``run``: the mini world unless real data is asked for."""
    from benchmark.backbone import BackboneSpec
    from benchmark.config import parse_sets
    from benchmark.runner import RunRequest

    if args.datasets:
        datasets = registry.datasets.select(args.datasets)
    elif args.user_datasets:
        from benchmark.datasets.imagefolder import WORLD as USER_WORLD

        datasets = [n for n in registry.datasets if registry.datasets.get(n).world == USER_WORLD]
    else:
        world = STANDARD_WORLD if args.data_root else MINI_WORLD
        datasets = [n for n in registry.datasets if registry.datasets.get(n).world == world]
    mini = _worlds(registry, datasets) == {MINI_WORLD}
    if args.checkpoint and args.pretrained:
        raise UserError("give either --pretrained or --checkpoint, not both")
    if args.backbone or args.checkpoint or args.pretrained or not mini:
        from benchmark.miniworld.model import MODEL_NAME

        name = args.backbone or (MODEL_NAME if mini and args.checkpoint else STANDARD_BACKBONE[0])
        pretrained = None
        if not args.checkpoint:
            pretrained = args.pretrained or (
                STANDARD_BACKBONE[1] if name == STANDARD_BACKBONE[0] else None
            )
        backbone = BackboneSpec(name, pretrained, args.checkpoint)
    else:
        from benchmark.miniworld.model import CHECKPOINT, MODEL_NAME

        backbone = BackboneSpec(MODEL_NAME, None, CHECKPOINT)
    device = _device(args.device)
    if args.data_root is not None and not args.data_root.is_dir():
        raise UserError(f"--data-root {args.data_root}: no such folder", 3)
    return RunRequest(
        methods=_select_methods(registry, args.methods or ["*"]),
        protocols=registry.protocols.select(args.protocols or ["*"]),
        datasets=datasets,
        seeds=args.seeds or ([1] if mini else [1, 2, 3]),
        backbone=backbone,
        results=args.results,
        cache_dir=args.cache_dir or default_cache_dir(),
        data_root=args.data_root,
        shots=args.shots,
        device=device,
        preset=args.preset or ("quick" if mini else "reference"),
        overrides=parse_sets(args.sets),
        rerun=args.rerun,
        retries=args.retries,
    )


def _executor(args):
    """The executor of ``run``: None (local) or a Ray executor."""
    if args.executor == "local":
        if args.address:
            raise UserError("--address is for --executor ray")
        return None
    from benchmark.ray_executor import RayExecutor

    return RayExecutor(args.address)


def cmd_run(args) -> int:
    from benchmark.runner import Runner

    executor = _executor(args)
    registry = _registry(args)
    request = resolve_request(args, registry)
    runner = Runner(registry, request, progress=lambda m: print(m, file=sys.stderr))
    summary = runner.run(executor)
    if not summary.planned:
        raise UserError(
            f"nothing to run: protocols {', '.join(request.protocols)} train on none of the "
            f"datasets {', '.join(request.datasets)} (cross-dataset and domain generalisation "
            "train on the source dataset of the selected datasets' world)"
        )
    print(
        f"{summary.succeeded} runs done, {summary.skipped} skipped (already in "
        f"{request.results}), {len(summary.failed)} failed; {summary.rows} rows written",
        file=sys.stderr,
    )
    if not args.no_leaderboard and (summary.succeeded or summary.skipped):
        print(_leaderboard_text(_results_table(request.results), None, "github", registry))
    if summary.failed:
        for cell, message in summary.failed:
            print(
                f"failed: {cell.method} {cell.protocol} {cell.dataset} {cell.shots} shots "
                f"seed {cell.seed}: {message}",
                file=sys.stderr,
            )
        return EXIT_CELLS_FAILED
    return EXIT_OK


def _results_table(results: Path):
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


def _leaderboard_text(table, protocol: str | None, fmt: str, registry, published=None) -> str:
    from benchmark.leaderboard import leaderboard

    if protocol is not None:
        registry.protocols.get(protocol)
    return leaderboard(
        table, protocol=protocol, fmt=fmt, titles=_titles(registry), reference=published
    )


def _regenerate_command(args, target: Path) -> str:
    """The ``leaderboard`` command that writes ``target`` as these options do."""
    command = ["python -m benchmark leaderboard", f"--results {args.results.as_posix()}"]
    if args.protocol:
        command.append(f"--protocol {args.protocol}")
    if args.format != "github":
        command.append(f"--format {args.format}")
    if args.reference == REFERENCE_BUILTIN:
        command.append("--reference")
    elif args.reference is not None:
        command.append(f"--reference {args.reference.as_posix()}")
    command.append(f"--write {target.as_posix()}")
    return " ".join(command)


def _generated_by(args, target: Path) -> str:
    """The first line of a written leaderboard: the command that regenerates it."""
    text = f"Generated by `{_regenerate_command(args, target)}`; do not edit."
    return {"github": f"<!-- {text} -->", "latex": f"% {text}", "csv": f"# {text}"}[args.format]


def cmd_leaderboard(args) -> int:
    registry = _registry(args)
    table, published = _results_table(args.results), _published(args.reference)
    text = _leaderboard_text(table, args.protocol, args.format, registry, published)
    target = args.write or args.check
    if target is None:
        print(text)
    else:
        text = f"{_generated_by(args, target)}\n\n{text}"
        if args.check:
            current = target.read_text(encoding="utf-8") if target.is_file() else None
            if current != text:
                state = "missing" if current is None else "stale"
                command = _regenerate_command(args, target)
                raise UserError(f"{target} is {state}: regenerate it with `{command}`", 1)
            print(f"{target} is up to date", file=sys.stderr)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target}", file=sys.stderr)
    if args.plot or args.html:
        _write_figures(args, registry, table, published)
    return EXIT_OK


def _write_figures(args, registry, table, published) -> None:
    from benchmark.plots import plots, write_plots

    if args.protocol is not None:
        table = table[table["protocol"] == args.protocol]
    titles = _titles(registry)
    if args.plot:
        written = write_plots(table, args.plot, titles)
        print(f"wrote {len(written)} plots to {args.plot}", file=sys.stderr)
    if args.html:
        from benchmark.leaderboard import reference_note, sections
        from benchmark.webpage import page

        note = None if published is None else reference_note(table, published)
        html = page(
            sections(table, titles=titles, reference=published),
            [(plot.title, plot.png()) for plot in plots(table, titles)],
            notes=[f"Results: {args.results}", *([note] if note else [])],
        )
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(html, encoding="utf-8")
        print(f"wrote {args.html}", file=sys.stderr)


def cmd_datasets(args) -> int:
    from benchmark.datasets.check import check, render

    registry = _registry(args)
    if not args.data_root.is_dir():
        raise UserError(f"--data-root {args.data_root}: no such folder", 3)
    specs = [
        registry.datasets.get(n)
        for n in registry.datasets
        if registry.datasets.get(n).world == STANDARD_WORLD
    ]
    print(render(check(args.data_root, specs), args.format))
    return EXIT_OK


def cmd_bench(args) -> int:
    import json

    from benchmark import bench, estimate

    if args.default_run:
        return _bench_default_run(args)
    if args.from_json is not None:
        try:
            report = json.loads(args.from_json.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(
                f"--from-json {args.from_json}: not a readable bench report ({exc})", EXIT_DATA
            ) from None
    else:
        report = _measure(args)
    print(bench.render(report))
    if args.estimate:
        report["estimate"] = estimate.estimate(report, _registry(args))
        print()
        print(estimate.render(report["estimate"]))
    _write_report(args.json, report)
    return EXIT_OK


def _set_threads(threads: int | None) -> None:
    """``--threads``: the CPU threads torch uses for the measurement (None: its choice)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _write_report(path: Path | None, report: dict) -> None:
    """``--json``: the report as JSON, when asked for."""
    import json

    if path is not None:
        path.write_text(json.dumps(report, indent=1) + "\n")


def _bench_default_run(args) -> int:
    from benchmark import wallclock

    given = [
        option
        for option, value in (
            ("--quick", args.quick),
            ("--estimate", args.estimate),
            ("--from-json", args.from_json),
            ("--classes", args.classes),
            ("--repeat", args.repeat),
        )
        if value
    ]
    if given:
        raise UserError(
            f"--default-run times the whole default run; it takes none of {', '.join(given)} "
            "(valid with it: --device, --threads, --json)"
        )
    _set_threads(args.threads)
    registry = _registry(args)
    top = ["--no-plugin-autoload"] if args.no_plugin_autoload else []
    device = ["--device", args.device] if args.device else []

    def request_for(results: Path, cache_dir: Path):
        run = ["run", "--results", str(results), "--cache-dir", str(cache_dir), *device]
        return resolve_request(build_parser().parse_args([*top, *run]), registry)

    report = wallclock.time_default_run(
        request_for, registry, progress=lambda m: print(m, file=sys.stderr)
    )
    print(wallclock.render(report))
    _write_report(args.json, report)
    return EXIT_CELLS_FAILED if report["failed"] else EXIT_OK


def _measure(args) -> dict:
    """Run the bench as the options ask; the report."""
    from benchmark.backbone import BackboneSpec
    from benchmark.bench import run_bench
    from benchmark.reference_step import IMAGE_PASSES

    device = _device(args.device)
    unknown = [m for m in args.methods if m not in IMAGE_PASSES]
    if unknown:
        raise UserError(
            f"--methods: no reference-design step for {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(IMAGE_PASSES))}"
        )
    cuda = device.startswith("cuda")
    _set_threads(args.threads)
    if args.quick:
        from benchmark.miniworld.model import CHECKPOINT, MODEL_NAME

        spec = BackboneSpec(MODEL_NAME, None, CHECKPOINT)
        classes, repeat, images, workers = args.classes or [10, 100], 1, 16, 0
    else:
        spec = BackboneSpec(args.backbone)
        classes = args.classes or ([10, 100, 1000] if cuda else [10, 100])
        repeat = args.repeat or (20 if cuda else 3)
        images, workers = args.images, args.workers
    return run_bench(
        spec,
        device,
        args.methods,
        classes,
        args.seeds_batched,
        images,
        workers,
        repeat,
        progress=lambda m: print(m, file=sys.stderr),
    )


COMMANDS = {
    "list": cmd_list,
    "run": cmd_run,
    "leaderboard": cmd_leaderboard,
    "datasets": cmd_datasets,
    "bench": cmd_bench,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(
            "interrupted; finished runs are saved, run the same command to continue",
            file=sys.stderr,
        )
        return 130
