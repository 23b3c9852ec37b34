"""CoOp: Learning to Prompt for Vision-Language Models (Zhou et al., IJCV 2022).

Algorithm: the prompt of class i is ``[V]_1 .. [V]_M [CLASS_i] .``; the context vectors
``[V]`` are the only learned parameters. p(y = i | x) = softmax_i(exp(t) cos(f(x), g(t_i)))
(CoOp eq. 2); the loss is cross-entropy; plain SGD steps. With class-specific context (CSC)
every class has its own ``[V]``, drawn at random: the reference code ignores CSC when an init
phrase is given, so that combination is refused here rather than silently changed.

Settings: ``coop.toml`` (few-shot as CoOp ran it; the other protocols as the CoCoOp paper ran
CoOp; each value with its source).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from benchmark.config import require
from benchmark.engine import Engine
from benchmark.prompting.context import InitialContext, initial_context
from benchmark.prompting.method import PromptConfig, PromptMethod
from benchmark.protocol import TrainData
from benchmark.settings import beside


@dataclass(frozen=True)
class Config(PromptConfig):
    class_specific: bool = False  # CSC: one random context per class

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            not (self.class_specific and self.ctx_init),
            "class_specific context starts random; the reference code ignores CSC with an "
            f"init phrase (ctx_init={self.ctx_init!r}): set ctx_init= (empty) to use CSC",
        )


class CoOp(PromptMethod[Config]):
    name, version, Config = "coop", "2", Config
    settings_file = beside(__file__)

    def initial_context(
        self, config: Config, runs: Sequence[TrainData], engine: Engine
    ) -> InitialContext:
        per_class = len(runs[0].classes.names) if config.class_specific else 0
        seeds = [run.seed for run in runs]
        return initial_context(engine.tower, config.ctx_init, config.n_ctx, seeds, per_class)


METHOD = CoOp()
