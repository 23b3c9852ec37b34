"""What a benchmark run is asked for, and the defaults that complete a request.

:class:`RunRequest` is the fully resolved request the runner executes. :func:`resolve_request`
builds one from the user's choices, filling what is left out the way ``python -m benchmark
run`` does: without a data root and datasets, the offline mini world with its own tiny CLIP,
seed 1 and the ``quick`` preset at 4 shots; with real data (a data root, or datasets of your
own), ViT-B-16 with the ``openai`` weights, seeds 1, 2, 3, the ``reference`` preset and each
protocol's shot counts. The CLI and the performance tools both call it, so a default is
decided in one place.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.config import PRESETS, parse_sets
from benchmark.datasets.imagefolder import WORLD as USER_WORLD
from benchmark.errors import EXIT_DATA, UserError
from benchmark.registry import Registry

if TYPE_CHECKING:
    from benchmark.backbone import BackboneSpec

MINI_WORLD = "mini"
STANDARD_WORLD = "standard"
STANDARD_BACKBONE = ("ViT-B-16", "openai")
#: The default benchmark's shot count on the mini world, for every protocol (ProGrad's
#: base-to-new and transfer setting): it keeps the default run to minutes on 2 CPU cores.
#: The full few-shot curve is ``--shots 1,2,4,8,16``.
MINI_SHOTS = (4,)
DEFAULT_RESULTS = Path("results")
CACHE_ENV = "VLPROMPT_BENCH_CACHE"
VARIANT_SEPARATOR = ":"


@dataclass(frozen=True)
class RunRequest:
    """Everything a run was asked for, with defaults already resolved."""

    methods: list[str]
    protocols: list[str]
    datasets: list[str]
    seeds: list[int]
    backbone: BackboneSpec
    results: Path
    cache_dir: Path
    data_root: Path | None = None
    shots: list[int] | None = None
    device: str = "cpu"
    preset: str = "reference"
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    rerun: bool = False
    retries: int = 0  # times a failed group runs again in the same run
    artifacts: bool = True  # save each trained run's learned tensors (benchmark.artifacts)


def default_cache_dir() -> Path:
    """``$VLPROMPT_BENCH_CACHE``, else ``~/.cache/vlprompt-bench``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "vlprompt-bench"


def split_variant(name: str) -> tuple[str, str | None]:
    """``"coop:csc"`` -> ``("coop", "csc")``; ``"coop"`` -> ``("coop", None)``."""
    base, sep, variant = name.partition(VARIANT_SEPARATOR)
    return base, (variant if sep else None)


def select_methods(registry: Registry, patterns: Sequence[str]) -> list[str]:
    """Method names matching the patterns (``coop*``); ``name:variant`` selects a variant
    (checked when the method's config is built)."""
    chosen: list[str] = []
    for pattern in patterns:
        base, variant = split_variant(pattern)
        names = registry.methods.select([base])
        chosen.extend(n if variant is None else f"{n}{VARIANT_SEPARATOR}{variant}" for n in names)
    return list(dict.fromkeys(chosen))


def resolve_device(asked: str | None) -> str:
    """The device asked for (checked), else cuda when available, else cpu."""
    if asked is None:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if asked not in ("cpu", "cuda") and not asked.startswith("cuda:"):
        raise UserError(f"--device {asked!r}: valid devices are cpu, cuda, cuda:N")
    return asked


def _worlds(registry: Registry, names: Sequence[str]) -> set[str]:
    return {registry.datasets.get(n).world for n in names}


def _datasets(registry: Registry, datasets: Sequence[str] | None, data_root: Path | None):
    if datasets:
        return registry.datasets.select(datasets)
    user = [n for n in registry.datasets if registry.datasets.get(n).world == USER_WORLD]
    if user:
        return user
    world = STANDARD_WORLD if data_root else MINI_WORLD
    return [n for n in registry.datasets if registry.datasets.get(n).world == world]


def check_data_root(data_root: Path | None) -> None:
    """Refuse a ``--data-root`` that is not a folder (None: none was given)."""
    if data_root is not None and not Path(data_root).is_dir():
        raise UserError(f"--data-root {data_root}: no such folder", EXIT_DATA)


def _backbone(
    mini: bool, backbone: str | None, pretrained: str | None, checkpoint: Path | None
) -> BackboneSpec:
    from benchmark.backbone import BackboneSpec, check_weights_choice
    from benchmark.miniworld.model import CHECKPOINT, MODEL_NAME

    check_weights_choice(pretrained, checkpoint)
    if not (backbone or checkpoint or pretrained or not mini):
        return BackboneSpec(MODEL_NAME, None, CHECKPOINT)
    name = backbone or (MODEL_NAME if mini and checkpoint else STANDARD_BACKBONE[0])
    if name == MODEL_NAME and not (checkpoint or pretrained):
        checkpoint = CHECKPOINT  # the mini world's CLIP comes with its weights
    if checkpoint:
        return BackboneSpec(name, None, checkpoint)
    return BackboneSpec(name, pretrained or _default_weights(name), None)


def _default_weights(name: str) -> str:
    """OpenAI's weights of ``name`` (the papers'); a model without them needs its weights
    named: never silently random ones."""
    import open_clip

    from benchmark.miniworld.model import register_model_config

    register_model_config()
    tags = [tag for model, tag in open_clip.list_pretrained() if model == name]
    if STANDARD_BACKBONE[1] in tags:
        return STANDARD_BACKBONE[1]
    if name not in open_clip.list_models():
        from benchmark.errors import unknown_name

        raise unknown_name("backbone", name, open_clip.list_models())
    raise UserError(
        f"--backbone {name} has no OpenAI weights: give --pretrained TAG "
        f"({', '.join(tags) or 'none known to open_clip'}) or --checkpoint FILE"
    )


def resolve_request(
    registry: Registry,
    *,
    methods: Sequence[str] | None = None,
    protocols: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    shots: Sequence[int] | None = None,
    seeds: Sequence[int] | None = None,
    backbone: str | None = None,
    pretrained: str | None = None,
    checkpoint: Path | None = None,
    data_root: Path | None = None,
    results: Path = DEFAULT_RESULTS,
    cache_dir: Path | None = None,
    device: str | None = None,
    preset: str | None = None,
    sets: Sequence[str] = (),
    rerun: bool = False,
    retries: int = 0,
    require_data: bool = True,
    artifacts: bool = True,
) -> RunRequest:
    """The request of ``run`` with these choices, every default filled (module docstring).

    ``datasets`` are names or wildcards; without them, the datasets of your own registered
    with ``--dataset`` (world ``user``), else the standard datasets when ``data_root`` is
    given, else the mini world. Standard datasets without ``data_root`` are refused unless
    ``require_data`` is false (planning alone reads no data).
    """
    chosen = _datasets(registry, datasets, data_root)
    worlds = _worlds(registry, chosen)
    if require_data and STANDARD_WORLD in worlds and data_root is None:
        standard = [n for n in chosen if registry.datasets.get(n).world == STANDARD_WORLD]
        raise UserError(
            f"the standard datasets {', '.join(standard)} need --data-root DIR, the folder "
            "holding them in CoOp's layout (`python -m benchmark datasets check --data-root "
            "DIR` says what is there); without it, run the mini world",
            EXIT_DATA,
        )
    mini = worlds == {MINI_WORLD}
    spec = _backbone(mini, backbone, pretrained, checkpoint)
    check_data_root(data_root)
    if preset is not None and preset not in PRESETS:
        raise UserError(f"preset {preset!r}: valid presets are {', '.join(PRESETS)}")
    return RunRequest(
        methods=select_methods(registry, methods or ["*"]),
        protocols=registry.protocols.select(protocols or ["*"]),
        datasets=chosen,
        seeds=list(seeds or ([1] if mini else [1, 2, 3])),
        backbone=spec,
        results=Path(results),
        cache_dir=Path(cache_dir) if cache_dir else default_cache_dir(),
        data_root=data_root,
        shots=list(shots or (MINI_SHOTS if mini else ())) or None,
        device=resolve_device(device),
        preset=preset or ("quick" if mini else "reference"),
        overrides=parse_sets(sets),
        rerun=rerun,
        retries=retries,
        artifacts=artifacts,
    )
