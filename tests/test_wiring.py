"""Wiring: what each method learns in a few steps equals a plain implementation's.

The rule tests check the update formulas in isolation; these check which loss, which
gradient and which initial context reach them. Each test trains one run of a method on the
tiny random CLIP and a few toy images, then trains the same run with the plain
implementation of ``tests/plain_reference.py`` (written from the papers and the official
code, sharing nothing with the suite but the cached image features), and asserts that:

- the learned tensors agree to ``ATOL`` (fp32 on the CPU);
- the mistakes the test guards against would have changed them by far more: each test
  trains the plain implementation once more with each such mistake made on purpose and
  asserts the distance is at least ``MARGIN`` times ``ATOL`` (otherwise the agreement would
  prove nothing).

The configuration makes the schedule and the sampler trivial: the batch holds the whole
training set (the random sampler only permutes it, and the mean loss does not depend on the
order), one step per epoch, epoch e reads the cache's augmented view e.

The suite is reached only through the adapter functions below (``suite_*``).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests import plain_reference as plain
from tests.conftest import TINY_MODEL, TOY_DATASET, register_tiny_model

ATOL = 1e-5
MARGIN = 100  # a mistake must move some learned value by at least MARGIN * ATOL
LINEAR_PROBE_ATOL = 1e-4
N_CLASSES, SHOTS, SEED = 3, 2, 2
EPOCHS = 3
TEMPLATE = "a photo of a {}."
SCHEDULE = {"epochs": EPOCHS, "batch_size": 64, "momentum": 0.9, "weight_decay": 5e-4, "views": 0}


# ---------------------------------------------------------------- the suite, behind one adapter


@dataclass(frozen=True)
class Trained:
    """One run's learned tensors (CoCoOp's meta-net in nn.Linear layout) and diagnostics."""

    tensors: dict[str, torch.Tensor]
    diagnostics: dict[str, float]


def toy_splits(toy_root: Path):
    from benchmark.datasets.splitfile import read_split_file

    base = toy_root / TOY_DATASET
    return read_split_file(base / f"split_zhou_{TOY_DATASET}.json", base / "images")


def toy_run(toy_root: Path):
    """One run: the first ``SHOTS`` training images of each of the first ``N_CLASSES`` toy
    classes (and as many validation images)."""
    from benchmark.protocol import Classes, TrainData

    splits = toy_splits(toy_root)

    def first(split):
        return tuple(
            s for c in range(N_CLASSES) for s in [x for x in split if x.label == c][:SHOTS]
        )

    classes = Classes(TOY_DATASET, splits.classnames[:N_CLASSES], TEMPLATE)
    return TrainData(TOY_DATASET, SHOTS, SEED, first(splits.train), first(splits.val), classes)


def eval_samples(toy_root: Path) -> tuple:
    """The test images of the run's classes."""
    return tuple(s for s in toy_splits(toy_root).test if s.label < N_CLASSES)


def suite_config(name: str, overrides: dict[str, object]):
    """The method and its config: ``Config(**overrides)`` completed for the toy dataset (its
    template fills the texts left empty); an init phrase without ``n_ctx`` gets one vector
    per word, as the reference code's CoOp, CoCoOp and KgCoOp."""
    from benchmark.method import Setting

    method = importlib.import_module(f"vlprompt_methods.{name}").METHOD
    if "ctx_init" in overrides and "n_ctx" not in overrides:
        overrides = {**overrides, "n_ctx": 0}
    setting = Setting("few_shot", TOY_DATASET, SHOTS, TINY_MODEL, "reference", TEMPLATE)
    return method, method.complete(method.Config(**overrides), setting)


def suite_train(name: str, run, overrides: dict[str, object], engine) -> Trained:
    """Train ``run`` alone with the method's config of ``overrides``."""
    method, config = suite_config(name, overrides)
    (classifier,) = method.train([run], config, engine)
    tensors = {"ctx": classifier.ctx}
    if hasattr(classifier, "net"):
        w1, b1, w2, b2 = classifier.net
        tensors.update(w1=w1.T, b1=b1, w2=w2.T, b2=b2)
    return Trained(
        {k: v.detach().cpu().float() for k, v in tensors.items()}, classifier.diagnostics
    )


def suite_initial(name: str, run, overrides: dict[str, object], engine) -> Trained:
    """The tensors a method starts from (random ones are the suite's seeded draws)."""
    return suite_train(name, run, {**overrides, "epochs": 0}, engine)


def suite_scores(name: str, run, overrides: dict[str, object], engine, samples) -> torch.Tensor:
    """A trained classifier's scores of ``samples`` (test view) against the run's classes."""
    method, config = suite_config(name, overrides)
    (classifier,) = method.train([run], config, engine)
    return classifier.scores(eval_features(engine, samples), run.classes).cpu()


def training_views(engine, run, epochs: int = EPOCHS) -> list[torch.Tensor]:
    """The cached raw image features (N, D) of the run's training images, view e of the
    run's seed per epoch."""
    return [
        engine.features.features(run.samples, view, run.augmentation, run.seed).cpu()
        for view in range(epochs)
    ]


def eval_features(engine, samples) -> torch.Tensor:
    """The cached raw image features (N, D) of the test view (no augmentation)."""
    return engine.features.features(samples).cpu()


# ---------------------------------------------------------------- shared checks


@pytest.fixture(scope="module")
def clip(tiny_checkpoint) -> plain.PlainCLIP:
    register_tiny_model()
    return plain.PlainCLIP(TINY_MODEL, tiny_checkpoint)


@pytest.fixture
def run(toy_root):
    return toy_run(toy_root)


def labels_of(run) -> torch.Tensor:
    return torch.tensor([s.label for s in run.samples])


def distance(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


def one_line(name: str, message: str) -> str:
    """torch's mismatch report on one line, so that a summary of failures shows it."""
    return f"{name} differs from the plain implementation: {' '.join(message.split())}"


def assert_agrees(suite: Trained, learned: Sequence[torch.Tensor], names: Sequence[str]) -> None:
    for name, value in zip(names, learned, strict=True):
        torch.testing.assert_close(
            suite.tensors[name], value, rtol=0, atol=ATOL, msg=lambda m, n=name: one_line(n, m)
        )


def assert_sensitive(learned: Sequence[torch.Tensor], mistakes: dict[str, Sequence[torch.Tensor]]):
    for mistake, other in mistakes.items():
        moved = distance(learned, other)
        assert moved > MARGIN * ATOL, f"{mistake!r} changes the learned tensors by only {moved:.2e}"


def names_of(run) -> tuple[str, ...]:
    return run.classes.names


# ---------------------------------------------------------------- CoOp

PHRASE = "a photo of a"  # 4 words, 4 BPE tokens: counting either way gives M = 4


def test_coop_shared_context(run, tiny_engine, clip):
    lr = 0.01
    suite = suite_train(
        "coop", run, {**SCHEDULE, "n_ctx": 4, "ctx_init": PHRASE, "lr": lr}, tiny_engine
    )
    views, y, names = training_views(tiny_engine, run), labels_of(run), names_of(run)
    init = clip.phrase_embeddings(PHRASE)
    learned = plain.train([init], plain.full_batch(plain.coop_loss(clip, names)), views, y, lr)
    assert_agrees(suite, learned, ["ctx"])
    assert_sensitive(learned, {"the init phrase not used": [torch.zeros_like(init)]})


def test_coop_class_specific_context(run, tiny_engine, clip):
    lr = 0.01
    overrides = {**SCHEDULE, "n_ctx": 4, "ctx_init": "", "class_specific": True, "lr": lr}
    init = suite_initial("coop", run, overrides, tiny_engine).tensors["ctx"]
    assert init.shape == (N_CLASSES, 4, clip.model.token_embedding.weight.shape[1])
    assert 0.015 < float(init.std()) < 0.025  # N(0, 0.02)
    assert distance([init[0]], [init[1]]) > 0.01  # a draw per class
    suite = suite_train("coop", run, overrides, tiny_engine)
    views, y, names = training_views(tiny_engine, run), labels_of(run), names_of(run)
    learned = plain.train([init], plain.full_batch(plain.coop_loss(clip, names)), views, y, lr)
    assert_agrees(suite, learned, ["ctx"])

    def shared_loss(params, x, y):  # every class reads the first class's context
        return plain.coop_loss(clip, names)([params[0][0]], x, y)

    shared = plain.train([init], plain.full_batch(shared_loss), views, y, lr)
    assert_sensitive(learned, {"one context shared by every class": shared})


# ---------------------------------------------------------------- CoCoOp

META_NET = ("w1", "b1", "w2", "b2")


def test_cocoop_context_and_meta_net(run, tiny_engine, clip):
    lr = 0.05
    overrides = {**SCHEDULE, "ctx_init": PHRASE, "lr": lr, "warmup": True}
    start = suite_initial("cocoop", run, overrides, tiny_engine).tensors
    d, width = clip.model.text_projection.shape[1], clip.model.token_embedding.weight.shape[1]
    hidden = d // 16
    assert [tuple(start[k].shape) for k in META_NET] == [
        (hidden, d),
        (hidden,),
        (width, hidden),
        (width,),
    ]
    torch.testing.assert_close(start["ctx"], clip.phrase_embeddings(PHRASE), rtol=0, atol=0)
    init = [start[k] for k in ("ctx", *META_NET)]
    views, y, names = training_views(tiny_engine, run), labels_of(run), names_of(run)
    hidden_units = F.linear(F.normalize(views[0], dim=-1), start["w1"], start["b1"])
    assert (hidden_units > 0).any(), "the meta-net's ReLU is dead on every image: pick another seed"
    suite = suite_train("cocoop", run, overrides, tiny_engine)
    learned = plain.train(init, plain.full_batch(plain.cocoop_loss(clip, names)), views, y, lr)
    assert_agrees(suite, learned, ["ctx", *META_NET])
    for name, before, after in zip(("ctx", *META_NET), init, learned, strict=True):
        assert_sensitive([after], {f"{name} not trained": [before]})

    def not_shifted(ctx, pi):
        return ctx + 0 * pi

    def shifted_once(ctx, pi):  # only the first context token
        return torch.cat([ctx[:1] + pi, ctx[1:]])

    mistakes = {
        "meta-net shift not added": not_shifted,
        "meta-net shift added to one token": shifted_once,
    }
    assert_sensitive(
        learned,
        {
            mistake: plain.train(
                init, plain.full_batch(plain.cocoop_loss(clip, names, shift)), views, y, lr
            )
            for mistake, shift in mistakes.items()
        },
    )


# ---------------------------------------------------------------- ProGrad

ENSEMBLE_TEMPLATES = (  # CoOp's zsclip.py, with the dataset's own template on other datasets
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)
PROGRAD_SLOTS = 8  # the phrase's 4 tokens last, 4 zeros first


def zero_shot_features(clip: plain.PlainCLIP, names, templates) -> torch.Tensor:
    """Normalised mean of the templates' normalised features (one template: its features)."""
    per_template = [
        F.normalize(clip.text_features([t.format(n) for n in names]), dim=-1) for t in templates
    ]
    return F.normalize(torch.stack(per_template).mean(0), dim=-1)


def projected_when_positive(g_d, g_g, lambda_):
    dot = (g_d * g_g).sum()
    return g_d - lambda_ * dot / (g_g * g_g).sum() * g_g if dot > 0 else g_d


def prograd_setup(run, tiny_engine, clip, ensemble: bool):
    """The suite's ProGrad run and a plain trainer ``train(init, combine, templates)``."""
    lr, lambda_ = 0.05, 1.0
    overrides = {
        **SCHEDULE,
        "n_ctx": PROGRAD_SLOTS,
        "ctx_init": PHRASE,
        "lambda_": lambda_,
        "ensemble": ensemble,
        "lr": lr,
    }
    suite = suite_train("prograd", run, overrides, tiny_engine)
    views, y, names = training_views(tiny_engine, run), labels_of(run), names_of(run)

    def train(start, combine=plain.prograd_combine, templates=(TEMPLATE,)):
        dots: list[float] = []
        teacher = zero_shot_features(clip, names, templates)
        step = plain.prograd_step(clip, names, teacher, lambda_, dots, combine)
        learned = plain.train([start], step, views, y, lr)
        return learned, sum(d < 0 for d in dots) / len(dots), dots

    return suite, train


def prograd_init(clip: plain.PlainCLIP, head: bool = False) -> torch.Tensor:
    """ProGrad's context: zeros, then the phrase's embeddings in the LAST slots (``head``:
    the phrase first, the mistake)."""
    phrase = clip.phrase_embeddings(PHRASE)
    zeros = torch.zeros(PROGRAD_SLOTS - len(phrase), phrase.shape[1])
    return torch.cat([phrase, zeros] if head else [zeros, phrase])


def swapped(g_d, g_g, lambda_):
    return plain.prograd_combine(g_g, g_d, lambda_)


def never_projected(g_d, g_g, lambda_):
    return g_d


def test_prograd(run, tiny_engine, clip):
    suite, train = prograd_setup(run, tiny_engine, clip, ensemble=False)
    init = prograd_init(clip)
    learned, fraction, dots = train(init)
    assert_agrees(suite, learned, ["ctx"])
    assert any(d < 0 for d in dots) and any(d > 0 for d in dots)  # both cases of eq. 4
    assert suite.diagnostics["prograd_projected_fraction"] == pytest.approx(fraction)
    assert_sensitive(
        learned,
        {
            "G_d from KL, G_g from CE": train(init, swapped)[0],
            "the init phrase in the first slots": train(prograd_init(clip, head=True))[0],
            "projected when G_d . G_g > 0": train(init, projected_when_positive)[0],
            "never projected (CoOp)": train(init, never_projected)[0],
        },
    )


def test_prograd_ensemble_teacher(run, tiny_engine, clip):
    suite, train = prograd_setup(run, tiny_engine, clip, ensemble=True)
    init = prograd_init(clip)
    learned, fraction, _ = train(init, templates=(TEMPLATE, *ENSEMBLE_TEMPLATES))
    assert_agrees(suite, learned, ["ctx"])
    assert fraction > 0
    assert suite.diagnostics["prograd_projected_fraction"] == pytest.approx(fraction)
    assert_sensitive(
        learned,
        {
            "the dataset's template alone as teacher": train(init)[0],
            "the seven ImageNet templates alone": train(init, templates=ENSEMBLE_TEMPLATES)[0],
            "G_d from KL, G_g from CE": train(init, swapped, (TEMPLATE, *ENSEMBLE_TEMPLATES))[0],
        },
    )


# ---------------------------------------------------------------- KgCoOp


def test_kgcoop(run, tiny_engine, clip):
    lr, weight = 0.01, 8.0
    init_phrase = "a picture of a"  # not the anchor's wording, so the anchor term pulls at once
    overrides = {**SCHEDULE, "ctx_init": init_phrase, "weight": weight, "lr": lr}
    suite = suite_train("kgcoop", run, overrides, tiny_engine)
    views, y, names = training_views(tiny_engine, run), labels_of(run), names_of(run)
    anchor = zero_shot_features(clip, names, (TEMPLATE,))
    init = clip.phrase_embeddings(init_phrase)

    def trained(loss):
        return plain.train([init], plain.full_batch(loss), views, y, lr)

    learned = trained(plain.kgcoop_loss(clip, names, anchor, weight))
    assert_agrees(suite, learned, ["ctx"])

    def weight_on_ce(params, x, y):  # weight * CE + (1 - mean cos)
        ce = plain.coop_loss(clip, names)(params, x, y)
        return plain.kgcoop_loss(clip, names, anchor, 1.0)(params, x, y) + (weight - 1) * ce

    assert_sensitive(
        learned,
        {
            "anchor weight not applied": trained(plain.kgcoop_loss(clip, names, anchor, 1.0)),
            "anchor weight applied to CE": trained(weight_on_ce),
            "no anchor term (CoOp)": trained(plain.coop_loss(clip, names)),
        },
    )


# ---------------------------------------------------------------- SCoOp and GCSCoOp


def sam_config(lr: float, rho: float) -> dict[str, object]:
    return {**SCHEDULE, "ctx_init": PHRASE, "lr": lr, "rho": rho}


def unnormalised_sam_step(loss, rho):
    """The mistake: e = rho * g, not rho * g / |g|."""

    def step(params, x, y):
        g = plain.gradients(lambda p: loss(p, x, y), params)
        perturbed = [p + rho * gi for p, gi in zip(params, g, strict=True)]
        return plain.gradients(lambda p: loss(p, x, y), perturbed)

    return step


def test_scoop(run, tiny_engine, clip):
    lr, rho = 0.05, 0.1
    suite = suite_train("scoop", run, sam_config(lr, rho), tiny_engine)
    views, y, names = training_views(tiny_engine, run), labels_of(run), names_of(run)
    loss = plain.coop_loss(clip, names)
    init = clip.phrase_embeddings(PHRASE)

    def trained(step):
        return plain.train([init], step, views, y, lr)

    learned = trained(plain.scoop_step(loss, rho))
    assert_agrees(suite, learned, ["ctx"])
    assert_sensitive(
        learned,
        {
            "stepping with G_CE (CoOp)": trained(plain.full_batch(loss)),
            "perturbation not normalised": trained(unnormalised_sam_step(loss, rho)),
        },
    )


def swapped_constraint(g_sam, g_ce, beta1, beta2):
    return plain.gcsam(g_ce, g_sam, beta1, beta2)


def bounds_swapped(g_sam, g_ce, beta1, beta2):
    return plain.gcsam(g_sam, g_ce, beta2, beta1)


BRANCH_DIAGNOSTICS = {
    "ce": "gcscoop_branch_ce",
    "sam": "gcscoop_branch_sam",
    "bisector": "gcscoop_branch_bisector",
}


@pytest.mark.parametrize(
    ("beta1", "beta2", "taken"),
    [
        (0.5, 0.9, {"ce", "bisector", "sam"}),
        (0.0, 0.9, {"bisector", "sam"}),  # no lower bound: a negative cosine bisects
    ],
    ids=["bounded", "no_lower_bound"],
)
def test_gcscoop(run, tiny_engine, clip, beta1, beta2, taken):
    lr, rho, epochs = 0.05, 0.1, 4
    overrides = {**sam_config(lr, rho), "beta1": beta1, "beta2": beta2, "epochs": epochs}
    suite = suite_train("gcscoop", run, overrides, tiny_engine)
    views, y, names = training_views(tiny_engine, run, epochs), labels_of(run), names_of(run)
    loss = plain.coop_loss(clip, names)
    init = clip.phrase_embeddings(PHRASE)

    def trained(constrain=plain.gcsam):
        log: list[tuple[str, float]] = []
        step = plain.gcscoop_step(loss, rho, beta1, beta2, log, constrain)
        return plain.train([init], step, views, y, lr), log

    learned, log = trained()
    assert_agrees(suite, learned, ["ctx"])
    branches = [branch for branch, _ in log]
    assert set(branches) == taken
    if beta1 <= 0:
        assert any(branch == "bisector" and c < 0 for branch, c in log)
    for branch, key in BRANCH_DIAGNOSTICS.items():
        assert suite.diagnostics[key] == pytest.approx(branches.count(branch) / len(branches))
    assert_sensitive(
        learned,
        {
            "constraint called with G_SAM and G_CE swapped": trained(swapped_constraint)[0],
            "beta1 and beta2 swapped": trained(bounds_swapped)[0],
            "stepping with G_SAM (SCoOp)": plain.train(
                [init], plain.scoop_step(loss, rho), views, y, lr
            ),
        },
    )


# ---------------------------------------------------------------- zero-shot CLIP and linear probe


def zero_shot_logits(clip, images, names, templates, normalise_each: bool = True):
    if normalise_each:
        return clip.logits(images, zero_shot_features(clip, names, templates))
    features = [clip.text_features([t.format(n) for n in names]) for t in templates]
    return clip.logits(images, torch.stack(features).mean(0))


def test_zeroshot_scores(run, toy_root, tiny_engine, clip):
    samples = eval_samples(toy_root)
    suite = suite_scores("zeroshot", run, {"ensemble": False}, tiny_engine, samples)
    images, names = eval_features(tiny_engine, samples), names_of(run)
    expected = zero_shot_logits(clip, images, names, (TEMPLATE,))
    torch.testing.assert_close(
        suite, expected, rtol=0, atol=ATOL, msg=lambda m: one_line("scores", m)
    )
    wrong = zero_shot_logits(clip, images, names, ("a {}.",))
    assert_sensitive([expected], {"another template": [wrong]})


def test_zeroshot_ensemble_scores(run, toy_root, tiny_engine, clip):
    samples = eval_samples(toy_root)
    suite = suite_scores("zeroshot", run, {"ensemble": True}, tiny_engine, samples)
    images, names = eval_features(tiny_engine, samples), names_of(run)
    templates = (TEMPLATE, *ENSEMBLE_TEMPLATES)
    expected = zero_shot_logits(clip, images, names, templates)
    torch.testing.assert_close(
        suite, expected, rtol=0, atol=ATOL, msg=lambda m: one_line("scores", m)
    )
    mistakes = {
        "the dataset's template alone": zero_shot_logits(clip, images, names, (TEMPLATE,)),
        "the seven ImageNet templates alone": zero_shot_logits(
            clip, images, names, ENSEMBLE_TEMPLATES
        ),
        "features averaged before normalising": zero_shot_logits(
            clip, images, names, templates, normalise_each=False
        ),
    }
    assert_sensitive([expected], {m: [logits] for m, logits in mistakes.items()})


def sklearn_scores(train_x, train_y, test_x, C: float) -> torch.Tensor:
    """scikit-learn's multinomial logistic regression (CoOp's lpclip), decision function."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, max_iter=10000, tol=1e-12)
    model.fit(train_x.double().numpy(), train_y.numpy())
    return torch.tensor(model.decision_function(test_x.double().numpy()))


def centred(scores: torch.Tensor) -> torch.Tensor:
    """Scores less their row mean: logistic regression's unpenalised biases are defined only
    up to a common constant."""
    return scores - scores.mean(dim=1, keepdim=True)


def test_linear_probe_fit(run, toy_root, tiny_engine):
    C = 1.0
    samples = eval_samples(toy_root)
    suite = centred(suite_scores("linear_probe", run, {"C": C}, tiny_engine, samples).double())
    train_x, test_x = eval_features(tiny_engine, run.samples), eval_features(tiny_engine, samples)
    y = labels_of(run)
    expected = centred(sklearn_scores(train_x, y, test_x, C))
    # two L-BFGS implementations reach the same (strictly convex) minimum to their tolerance
    torch.testing.assert_close(
        suite, expected, rtol=0, atol=LINEAR_PROBE_ATOL, msg=lambda m: one_line("scores", m)
    )
    augmented = training_views(tiny_engine, run, 1)[0]
    mistakes = {
        "normalised features": sklearn_scores(F.normalize(train_x, dim=-1), y, test_x, C),
        "an augmented view": sklearn_scores(augmented, y, test_x, C),
    }
    for mistake, scores in mistakes.items():
        moved = float((centred(scores) - expected).abs().max())
        assert moved > MARGIN * LINEAR_PROBE_ATOL, f"{mistake!r} changes the scores by {moved:.2e}"
