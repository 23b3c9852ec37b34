"""``python -m benchmark recipes``: the published tables the suite reproduces, what each
costs, and whether its datasets are present.

One line per recipe (:mod:`benchmark.recipes`): its paper and table, protocol, backbone and
shot counts, the number of runs and training steps, the device hours they take, estimated
from a bench report of the recipe's backbone (:mod:`benchmark.perf.recipe_cost`; without one it
says which report is needed), and, with ``--data-root``, whether its datasets are there
(:mod:`benchmark.datasets.check`). Then the tables and rows no recipe reproduces, and why.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
from pathlib import Path

from benchmark.cli.command import Command
from benchmark.cli.options import registry_for
from benchmark.errors import EXIT_DATA, EXIT_OK, UserError
from benchmark.request import check_data_root

EPILOG = """examples:
  python -m benchmark recipes
  python -m benchmark recipes --data-root ~/data
  python -m benchmark bench --backbone RN50 --device cuda --json rn50.json
  python -m benchmark recipes --bench rn50.json --bench vit-b-16.json --format json
  python -m benchmark run --recipe prograd-iccv2023/table1 --data-root ~/data --device cuda
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-root", type=Path, help="say which of each recipe's datasets are present there"
    )
    parser.add_argument(
        "--bench",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a report of `python -m benchmark bench --json FILE` (one per backbone, "
        "repeatable): estimate the device hours of the recipes on its backbone",
    )
    parser.add_argument("--format", default="text", choices=["text", "json"])


def _reports(paths: list[Path]) -> dict[str, tuple[str, dict]]:
    """The bench reports by backbone; two of one backbone are a usage error."""
    reports: dict[str, tuple[str, dict]] = {}
    for path in paths:
        try:
            report = json.loads(path.read_text())
            backbone = report["backbone"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(
                f"--bench {path}: not a readable bench report ({exc})", EXIT_DATA
            ) from None
        if backbone in reports:
            raise UserError(f"--bench: {reports[backbone][0]} and {path} are both of {backbone}")
        reports[backbone] = (f"{path} ({report.get('device', '?')})", report)
    return reports


def describe(registry, reports: dict[str, tuple[str, dict]], data_root: Path | None) -> dict:
    """Every recipe with its matrix, counts, estimate and dataset status, as a JSON-able
    dict, with the tables that are not reproducible and the distinct runs of all recipes."""
    from benchmark.perf.command import using_report
    from benchmark.perf.recipe_cost import ASSUMPTIONS, recipe_cost
    from benchmark.recipes import load, recipe_cells, unique_cells

    book = load()
    status = _dataset_status(registry, book, data_root) if data_root is not None else None
    entries, every_run = [], set()
    for recipe in book.recipes:
        planned = recipe_cells(registry, recipe)
        cells = unique_cells(planned)
        every_run.update(c.key for c in planned)
        report = reports.get(recipe.backbone)
        checked = (
            using_report("--bench", report[0], "bench") if report else contextlib.nullcontext()
        )
        with checked:
            cost = recipe_cost(cells, recipe.datasets, recipe.backbone, report)
        entries.append(
            {
                **dataclasses.asdict(recipe),
                "runs": cost.runs,
                "trained_runs": cost.trained_runs,
                "training_steps": cost.run_steps,
                "training_steps_by_method": cost.by_method_steps,
                "encoded_images": cost.encoded_images,
                "device_hours_estimate": cost.hours,
                "estimated_from": cost.report,
                "no_estimate_because": cost.missing or None,
                "datasets_status": None
                if status is None
                else {d: status[d] for d in recipe.datasets},
            }
        )
    return {
        "recipes": entries,
        "not_reproducible": [
            {"paper": u.paper, "table": u.table, "reason": u.reason} for u in book.unreproducible
        ],
        "distinct_runs": len(every_run),
        "estimate_assumptions": list(ASSUMPTIONS),
        "data_root": None if data_root is None else str(data_root),
    }


def _dataset_status(registry, book, data_root: Path) -> dict[str, dict]:
    """Per dataset of any recipe: ``ok``, ``missing`` or ``problems``, with the details."""
    from benchmark.datasets.check import check

    check_data_root(data_root)
    names = list(dict.fromkeys(d for recipe in book.recipes for d in recipe.datasets))
    reports = check(data_root, [registry.datasets.get(name) for name in names])
    return {
        r.name: {
            "state": "ok" if r.ok else ("problems" if r.found else "missing"),
            "details": r.problems,
        }
        for r in reports
    }


def render_text(described: dict) -> str:
    """The recipes as a table, then the notes the table's columns need."""
    from tabulate import tabulate

    from benchmark.perf.recipe_cost import rounded_hours

    rows = []
    for r in described["recipes"]:
        hours = r["device_hours_estimate"]
        status = r["datasets_status"]
        if status is None:
            present = "-"
        else:
            present = f"{sum(s['state'] == 'ok' for s in status.values())}/{len(status)}"
        rows.append(
            (
                r["name"],
                r["paper"],
                r["table"],
                r["protocol"],
                r["backbone"],
                ",".join(map(str, r["shots"])),
                r["runs"],
                f"{r['training_steps']:,}",
                "-" if hours is None else rounded_hours(hours),
                present,
            )
        )
    headers = (
        "recipe",
        "paper",
        "table",
        "protocol",
        "backbone",
        "shots",
        "runs",
        "training steps",
        "device h (estimate)",
        "datasets ok",
    )
    parts = [tabulate(rows, headers=headers, tablefmt="simple", colalign=_ALIGN)]
    parts.append(
        f"\n{described['distinct_runs']} distinct runs in all (recipes share runs: a cell "
        "planned by two recipes runs once)."
    )
    parts += _hours_note(described)
    if described["data_root"] is None:
        parts.append("\nDatasets: give --data-root DIR to see which are present.")
    else:
        parts += _dataset_note(described)
    parts.append("\nNot reproducible:")
    parts += [
        f"- {u['paper']}/table{u['table']}: {u['reason']}" for u in described["not_reproducible"]
    ]
    for r in described["recipes"]:
        for n in r["not_reproduced"]:
            which = n["method"] + (f" ({n['variant']})" if n["variant"] else "")
            on = f" on {', '.join(n['eval_datasets'])}" if n["eval_datasets"] else ""
            parts.append(f"- {r['name']}, rows of {which}{on}: {n['reason']}")
    return "\n".join(parts)


_ALIGN = ("left",) * 6 + ("right", "right", "right", "left")


def _hours_note(described: dict) -> list[str]:
    recipes = described["recipes"]
    estimated = sorted({r["estimated_from"] for r in recipes if r["estimated_from"]})
    lines = ["", "Device hours are estimates, not measurements."]
    if estimated:
        lines.append(f"Estimated from the bench reports {', '.join(estimated)}, counting:")
        lines += [f"- {a}" for a in described["estimate_assumptions"]]
    without = sorted(
        {
            r["backbone"]
            for r in recipes
            if r["no_estimate_because"] == f"no bench report of {r['backbone']}"
        }
    )
    if without:
        lines.append(
            f"No estimate without a bench report of the recipe's backbone ({', '.join(without)}): "
            "time the steps on the GPU that will run the recipe, once per backbone, e.g. "
            "`python -m benchmark bench --backbone RN50 --device cuda --json rn50.json`, and "
            "pass each report with --bench FILE."
        )
    lines += [
        f"No estimate for {r['name']}: {r['no_estimate_because']}."
        for r in recipes
        if r["estimated_from"] is None and r["backbone"] not in without
    ]
    return lines


def _dataset_note(described: dict) -> list[str]:
    status: dict[str, dict] = {}
    for r in described["recipes"]:
        status.update(r["datasets_status"])
    bad = {d: s for d, s in status.items() if s["state"] != "ok"}
    if not bad:
        return [f"\nEvery dataset is present under {described['data_root']}."]
    lines = [f"\nDatasets under {described['data_root']} that are not ready:"]
    for name, s in bad.items():
        lines.append(f"- {name}: {'; '.join(s['details']) or s['state']}")
    lines.append(
        "The README's section 'Reproducing the papers' says where each dataset and its split "
        "file come from; `python -m benchmark datasets check --data-root DIR` checks them all."
    )
    return lines


def run(args: argparse.Namespace) -> int:
    registry = registry_for(args)
    described = describe(registry, _reports(args.bench), args.data_root)
    if args.format == "json":
        print(json.dumps(described, indent=2))
    else:
        print(render_text(described))
    return EXIT_OK


COMMAND = Command(
    "recipes",
    "list the published tables the suite reproduces: runs, estimated device hours, datasets",
    configure,
    run,
    epilog=EPILOG,
)
