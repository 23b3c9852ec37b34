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
            {"tight": Variant({"max_norm": 0.1}, "CoOp-clipped (0.1)")},
            title="CoOp-clipped",
        )
    )
