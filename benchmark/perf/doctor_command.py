"""``python -m benchmark doctor``: check and measure the training path on one device."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from benchmark.cli.command import Command
from benchmark.cli.options import count, csv_list, positive_int
from benchmark.errors import EXIT_OK, EXIT_USAGE, UserError

#: The exit code when a check failed.
EXIT_CHECKS_FAILED = 1

DESCRIPTION = """\
Checks and measures the training path on one device, with random-initialised
weights and synthetic images (nothing is downloaded), and prints one table:
  run       a short real-shape matrix through the runner: every method and
            protocol, 3 seeds batched, K = 100 and 1000, a few steps each;
  numerics  bf16 autocast against fp32 training, batched seeds against
            separate runs, a resumed matrix against an uninterrupted one;
  speed     our step against the reference design's at K = 10, 100, 1000,
            the text encoder's TFLOP/s against the measured bf16 matmul peak,
            image-feature extraction with JPEG decoding and encoding apart;
  memory    peak GPU memory of ImageNet-size (K = 1000, 16 shots) CoOp and
            CoCoOp training.
Each check is PASS or FAIL against its target; the speed and memory targets
are for one H100/H200-class GPU and are only measured (INFO) elsewhere. The
exit code is 0 when no check failed, 1 otherwise."""

EPILOG = """examples:
  python -m benchmark doctor --device cuda --json doctor.json   # under 10 min on one H100
  python -m benchmark doctor --device cpu --quick                # the tiny CLIP, small sizes
  python -m benchmark doctor --device cuda --only numerics,memory
  python -m benchmark doctor --from-json doctor.json             # re-print a saved report
  python -m benchmark bench --from-json doctor.json --estimate   # its speed part, estimated
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the mini world's tiny CLIP architecture at small sizes: the checks on a CPU",
    )
    parser.add_argument(
        "--only",
        type=csv_list,
        metavar="SECTIONS",
        help="comma-separated sections to run (default: all): run, numerics, speed, memory",
    )
    parser.add_argument(
        "--backbone",
        help="open_clip model, random-initialised (default: ViT-B-16; with --quick the mini "
        "world's vlprompt-tiny)",
    )
    parser.add_argument(
        "--workers",
        type=count,
        default=min(8, os.cpu_count() or 1),
        help="data-loader workers of the extraction measurement (default: min(8, CPU cores))",
    )
    parser.add_argument("--threads", type=positive_int, help="CPU threads for torch")
    parser.add_argument("--json", type=Path, help="also write the report as JSON")
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="FILE",
        help="measure nothing: read a report written by --json and print it",
    )


def run(args: argparse.Namespace) -> int:
    from benchmark.perf import doctor
    from benchmark.perf.command import read_report, using_report, write_report

    if args.from_json is not None:
        report = read_report(args.from_json, "doctor")
        if report.get("kind") != "doctor":
            raise UserError(
                f"--from-json {args.from_json}: not a doctor report (read bench reports with "
                "`bench --from-json`)"
            )
        checked = using_report("--from-json", args.from_json, "doctor")
    else:
        report = _measure(args)
        write_report(args.json, report)
        checked = contextlib.nullcontext()
    with checked:
        print(doctor.render(report))
        return EXIT_CHECKS_FAILED if doctor.failed(report) else EXIT_OK


def _measure(args: argparse.Namespace) -> dict:
    import dataclasses

    from benchmark.perf import doctor
    from benchmark.perf.command import set_threads
    from benchmark.request import resolve_device

    sections = args.only or list(doctor.SECTIONS)
    unknown = [s for s in sections if s not in doctor.SECTIONS]
    if unknown:
        raise UserError(
            f"--only: no section {', '.join(unknown)}; valid: {', '.join(doctor.SECTIONS)}",
            EXIT_USAGE,
        )
    device = resolve_device(args.device)
    if not args.quick and not device.startswith("cuda"):
        raise UserError(
            f"doctor --device {device}: the full sizes (ViT-B-16, K = 1000) take hours on a "
            "CPU; add --quick for the small sizes, or run it on a CUDA GPU"
        )
    sizes = doctor.QUICK if args.quick else doctor.FULL
    if args.backbone:
        sizes = dataclasses.replace(sizes, backbone=args.backbone)
    doctor.model_image_size(sizes.backbone)  # an unknown backbone: one line, before any work
    set_threads(args.threads)
    autoload = False if args.no_plugin_autoload else None
    return doctor.run_doctor(
        sizes,
        device,
        sections,
        args.workers,
        autoload,
        progress=lambda m: print(m, file=sys.stderr, flush=True),
    )


COMMAND = Command(
    "doctor",
    "check and measure the training path on one device (a CUDA GPU, or --quick)",
    configure,
    run,
    description=DESCRIPTION,
    epilog=EPILOG,
)
