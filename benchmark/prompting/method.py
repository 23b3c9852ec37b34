"""The CoOp family's method: everything but a paper's own parts.

A CoOp-family method learns context vectors for prompts ``[SOS] ctx_1..ctx_M <class name> .``
with the encoders frozen. This base does what every member does the same way: its config
from the family's settings (``family.toml``, the shared engine of the reference code) and
the method's own table; the initial context (random, or an init phrase, see
:mod:`benchmark.prompting.context`); each step's text features and logits; the training
loop (:func:`benchmark.prompting.trainer.fit`); one classifier per run. A method supplies
its paper's parts only:

- ``Config``: its fields on top of :class:`PromptConfig`;
- :meth:`PromptMethod.objective`: the per-run losses of a step (default: cross-entropy);
- :meth:`PromptMethod.rule`: how a step's gradients are made from them (default: the plain
  gradient of ``loss``);
- :meth:`PromptMethod.initial_context` and ``learner_type``, for a method that starts or
  learns otherwise (CoOp's class-specific context, CoCoOp's meta-net), with
  :meth:`PromptMethod.classifier_from` for a classifier of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.nn.functional as F

from benchmark.config import above, at_least, require
from benchmark.engine import Engine
from benchmark.method import LearnedState, Setting
from benchmark.perf.reference_step import ReferenceDesign
from benchmark.prompting.classifier import PromptClassifier, cosine_logits, saved_context
from benchmark.prompting.context import InitialContext, initial_context, prompt_lead, words
from benchmark.prompting.rules import Losses, UpdateRule, plain
from benchmark.prompting.text import PromptEncoder
from benchmark.prompting.trainer import Batch, Optimisation, fit
from benchmark.protocol import Classes, TrainData
from benchmark.settings import Configured

FAMILY_SETTINGS = Path(__file__).with_name("family.toml")
#: The longest context: [SOS], the context, a one-token class name, "." and [EOT] in CLIP's
#: 77 positions.
MAX_CONTEXT = 73


@dataclass(frozen=True)
class PromptConfig:
    """The fields every CoOp-family method has: the context and the optimisation.

    ``n_ctx`` learned context vectors; ``ctx_init`` an init phrase (empty: random N(0, 0.02)
    context), with ``n_ctx`` 0 meaning one vector per word of the phrase. The optimiser and
    schedule are the reference code's (:class:`~benchmark.prompting.trainer.Optimisation`);
    ``views`` > 0 cycles through that many cached augmented views (0: a new one per epoch).
    Values out of range raise ``ValueError`` when the config is made (at ``--set`` time).
    """

    n_ctx: int = 16
    ctx_init: str = ""
    epochs: int = 200
    batch_size: int = 32
    lr: float = 0.002
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup: bool = True  # a first epoch at lr 1e-5 (the reference)
    squared_cosine: bool = False
    views: int = 0

    def __post_init__(self) -> None:
        require(0 <= self.n_ctx <= MAX_CONTEXT, f"n_ctx must be 0..{MAX_CONTEXT}, got {self.n_ctx}")
        require(self.n_ctx > 0 or bool(self.ctx_init), "n_ctx 0 needs an init phrase (ctx_init)")
        if self.ctx_init:
            require(
                " ".join(self.ctx_init.split()) == self.ctx_init,
                f"ctx_init {self.ctx_init!r}: words separated by single spaces, no spaces around",
            )
            require(
                words(self.ctx_init) <= (self.n_ctx or MAX_CONTEXT),
                f"ctx_init {self.ctx_init!r} has {words(self.ctx_init)} words, more than "
                f"n_ctx={self.n_ctx}",
            )
        at_least("epochs", self.epochs, 0)  # 0: untrained
        at_least("batch_size", self.batch_size, 1)
        above("lr", self.lr, 0)
        require(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        at_least("weight_decay", self.weight_decay, 0)
        at_least("views", self.views, 0)  # 0: a new view each epoch

    def optimisation(self) -> Optimisation:
        return Optimisation(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            warmup=self.warmup,
            squared_cosine=self.squared_cosine,
            distinct_views=self.views,
        )


@dataclass(frozen=True)
class Step:
    """One step's forward pass for S runs: normalised text features (S, K, D), or (S, B, K,
    D) with per-image prompts, and logits (S, B, K) of the batch's images."""

    texts: torch.Tensor
    logits: torch.Tensor
    batch: Batch


Objective = Callable[[Step], Losses]


def cross_entropy(step: Step) -> torch.Tensor:
    """Per-run cross-entropy (S,) of a step's logits."""
    ce = F.cross_entropy(step.logits.transpose(1, 2), step.batch.labels, reduction="none")
    return ce.mean(1)


class PromptLearner:
    """What a group of runs learns, and how it makes a step: the context of each run, shared
    by every class (S, M, d) or one per class (S, K, M, d)."""

    def __init__(self, engine: Engine, runs: Sequence[TrainData], init: InitialContext) -> None:
        self.engine = engine
        self.lead = init.lead
        self.params: list[torch.Tensor] = [init.ctx.to(engine.device)]
        names = runs[0].classes.names
        self.encoder = PromptEncoder(engine.tower, names, init.ctx.shape[-2], init.lead)

    def step(self, params: Sequence[torch.Tensor], batch: Batch) -> Step:
        ctx = params[0]
        texts = F.normalize(self.encoder(ctx if ctx.dim() == 4 else ctx[:, None]), dim=-1)
        logits = cosine_logits(batch.features, texts, self.engine.backbone.logit_scale)
        return Step(texts, logits, batch)

    def classifiers(
        self, runs: Sequence[TrainData], diagnostics: Sequence[dict[str, float]]
    ) -> list[PromptClassifier]:
        ctx = self.params[0]
        return [
            PromptClassifier(self.engine, ctx[i], self.lead, diagnostics[i], run.classes)
            for i, run in enumerate(runs)
        ]


ConfigT = TypeVar("ConfigT", bound=PromptConfig)


class PromptMethod(Configured[ConfigT]):
    """A CoOp-family method (module docstring): override the paper's parts."""

    base_settings = (FAMILY_SETTINGS,)
    learner_type: type[PromptLearner] = PromptLearner
    #: How the reference code makes one step of the method, for ``bench``: CoOp's, unless a
    #: method says otherwise.
    reference_design = ReferenceDesign()

    def training_views(self, config: ConfigT) -> range:
        return config.optimisation().views

    def texts(self, config: ConfigT, setting: Setting) -> dict[str, Any]:
        lead = prompt_lead(config.ctx_init, config.n_ctx)
        if not config.ctx_init:
            return {
                "prompt": f"{lead.text} {{}}.",
                "context": f"{lead.n_ctx} vectors drawn from N(0, 0.02)",
            }
        return {
            "prompt": f"{lead.text} {{}}.",
            "context": f"the first {lead.n_ctx} tokens after [SOS]: {lead.n_ctx - lead.n_words} "
            f"zeros, then the embeddings of the init phrase's first {lead.n_words} tokens (one "
            "per word); further tokens of the phrase stay fixed before the class name",
        }

    def initial_context(
        self, config: ConfigT, runs: Sequence[TrainData], engine: Engine
    ) -> InitialContext:
        seeds = [run.seed for run in runs]
        return initial_context(engine.tower, config.ctx_init, config.n_ctx, seeds)

    def learner(self, config: ConfigT, runs: Sequence[TrainData], engine: Engine) -> PromptLearner:
        return self.learner_type(engine, runs, self.initial_context(config, runs, engine))

    def objective(self, config: ConfigT, classes: Classes, engine: Engine) -> Objective:
        return lambda step: {"loss": cross_entropy(step)}

    def rule(self, config: ConfigT) -> UpdateRule:
        return plain

    def train(
        self, runs: Sequence[TrainData], config: ConfigT, engine: Engine
    ) -> list[PromptClassifier]:
        learner = self.learner(config, runs, engine)
        objective = self.objective(config, runs[0].classes, engine)

        def losses(params: Sequence[torch.Tensor], batch: Batch) -> Losses:
            return objective(learner.step(params, batch))

        opt = config.optimisation()
        diagnostics = fit(runs, engine, learner.params, losses, self.rule(config), opt)
        return learner.classifiers(runs, diagnostics)

    def classifier_from(
        self, state: LearnedState, trained_on: Classes, engine: Engine
    ) -> PromptClassifier:
        """The classifier of a saved context (:meth:`PromptClassifier.state`): (M, d), or
        (K, M, d) with one context per class of ``trained_on``."""
        per_class = (len(trained_on.names),) if state.tensor("ctx").dim() == 3 else ()
        ctx, lead = saved_context(state, engine, *per_class)
        return PromptClassifier(engine, ctx.to(engine.device), lead, {}, trained_on)
