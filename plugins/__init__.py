"""The suite's built-in methods, registered like any third-party plugin.

Each method lives in its own module; this module only names them, so that listing methods
imports neither torch nor the method code.
"""

from __future__ import annotations

from benchmark.hookspecs import hookimpl
from benchmark.registry import MethodSpec

BUILTIN_METHODS = (
    ("zeroshot", "zero-shot CLIP with the dataset's hand-crafted prompt", ("ensemble",)),
    ("coop", "CoOp: learned context vectors (Zhou et al., IJCV 2022)", ("csc",)),
    ("kgcoop", "KgCoOp: knowledge-guided context (Yao et al., CVPR 2023)", ("squared_cosine",)),
    ("prograd", "ProGrad: prompt-aligned gradient (Zhu et al., ICCV 2023)", ("ensemble",)),
    ("scoop", "SCoOp: sharpness-aware (SAM) context optimisation", ()),
    ("gcscoop", "GCSCoOp: gradient-constrained sharpness-aware context", ("default",)),
    ("linear_probe", "linear probe CLIP: logistic regression on image features", ()),
    ("cocoop", "CoCoOp: image-conditional prompts (Zhou et al., CVPR 2022)", ()),
)


@hookimpl
def register_methods(register) -> None:
    for name, summary, variants in BUILTIN_METHODS:
        register(MethodSpec(name, summary, f"vlprompt_methods.{name}:METHOD", variants))
