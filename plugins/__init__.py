"""The suite's built-in methods, registered like any third-party plugin.

Each method lives in its own module; this module only names them, so that listing methods
imports neither torch nor the method code.
"""

from __future__ import annotations

from benchmark.hookspecs import hookimpl
from benchmark.registry import MethodSpec, Variant

BUILTIN_METHODS = (
    MethodSpec(
        "zeroshot",
        "zero-shot CLIP with the dataset's hand-crafted prompt",
        "vlprompt_methods.zeroshot:METHOD",
        {"ensemble": Variant({"ensemble": True}, "CLIP++")},
        title="CLIP",
    ),
    MethodSpec(
        "coop",
        "CoOp: learned context vectors (Zhou et al., IJCV 2022)",
        "vlprompt_methods.coop:METHOD",
        # CSC as CoOp's paper ran it: 16 random context vectors per class
        {"csc": Variant({"class_specific": True, "ctx_init": "", "n_ctx": 16}, "CoOp (CSC)")},
        title="CoOp",
    ),
    MethodSpec(
        "kgcoop",
        "KgCoOp: knowledge-guided context (Yao et al., CVPR 2023)",
        "vlprompt_methods.kgcoop:METHOD",
        {"single_cosine": Variant({"squared_cosine": False}, "KgCoOp (single cosine)")},
        title="KgCoOp",
    ),
    MethodSpec(
        "prograd",
        "ProGrad: prompt-aligned gradient (Zhu et al., ICCV 2023)",
        "vlprompt_methods.prograd:METHOD",
        {"ensemble": Variant({"ensemble": True}, "ProGrad++")},
        title="ProGrad",
    ),
    MethodSpec(
        "scoop",
        "SCoOp: sharpness-aware (SAM) context optimisation",
        "vlprompt_methods.scoop:METHOD",
        title="SCoOp",
    ),
    MethodSpec(
        "gcscoop",
        "GCSCoOp: gradient-constrained sharpness-aware context",
        "vlprompt_methods.gcscoop:METHOD",
        {"default": Variant({"rho": 0.1, "beta1": 0.5, "beta2": 0.8}, "GCSCoOp (default)")},
        title="GCSCoOp",
    ),
    MethodSpec(
        "linear_probe",
        "linear probe CLIP: logistic regression on image features",
        "vlprompt_methods.linear_probe:METHOD",
        title="Linear probe",
    ),
    MethodSpec(
        "cocoop",
        "CoCoOp: image-conditional prompts (Zhou et al., CVPR 2022)",
        "vlprompt_methods.cocoop:METHOD",
        title="CoCoOp",
    ),
)


@hookimpl
def register_methods(register) -> None:
    for spec in BUILTIN_METHODS:
        register(spec)
