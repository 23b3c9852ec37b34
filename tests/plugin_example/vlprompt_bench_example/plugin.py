"""The hook implementations the suite finds through the ``vlprompt_bench`` entry point.

Only names and a ``module:attribute`` target: listing methods imports neither torch nor
the method's code.
"""

from __future__ import annotations

from benchmark.hookspecs import hookimpl
from benchmark.registry import MethodSpec, Variant


@hookimpl
def register_methods(register) -> None:
    register(
        MethodSpec(
            "coop_clipped",
            "CoOp with each run's gradient clipped to a maximum norm (example plugin)",
            "vlprompt_bench_example.method:METHOD",
            {"csc": Variant({"class_specific": True}, "CoOp-clipped (CSC)")},
            title="CoOp-clipped",
        )
    )
