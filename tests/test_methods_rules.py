"""The update rules against their equations, on hand-made and random gradients.

ProGrad eq. 4, SAM (GCSCoOp eqs. 4-5), GCSAM eq. 7 and KgCoOp's loss; every branch, the
boundaries (decided as the reference compares: ProGrad projects iff G_d . G_g < 0; GCSAM
takes G_CE iff c <= beta1, else G_SAM iff c >= beta2), zero gradients, and per-run
independence (S runs in one call equal S separate calls).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from vlprompt_methods.gcscoop import BRANCH_BISECTOR, BRANCH_CE, BRANCH_SAM, NO_LOWER_BOUND, gcsam
from vlprompt_methods.kgcoop import kgcoop_losses
from vlprompt_methods.prograd import prograd_losses, prograd_project

from benchmark.prompting.method import Step
from benchmark.prompting.rules import flat
from benchmark.prompting.sam import cosine, sam_gradients
from benchmark.prompting.trainer import Batch


def as_grads(vectors: torch.Tensor) -> list[torch.Tensor]:
    """(S, 7) vectors as a gradient list of two tensors (S, 2, 2) and (S, 3)."""
    return [vectors[:, :4].reshape(-1, 2, 2), vectors[:, 4:]]


def vec(*values: float) -> torch.Tensor:
    v = torch.zeros(7, dtype=torch.float64)
    v[: len(values)] = torch.tensor(values, dtype=torch.float64)
    return v


# ---------------------------------------------------------------- ProGrad (eq. 4)


def prograd_reference(d: torch.Tensor, g: torch.Tensor, lam: float) -> torch.Tensor:
    dot = float(d @ g)
    if dot < 0:
        return d - lam * dot / float(g @ g) * g
    return d


@pytest.mark.parametrize("lam", [1.0, 0.8])
def test_prograd_random_against_equation(lam):
    generator = torch.Generator().manual_seed(0)
    d = torch.randn(64, 7, generator=generator, dtype=torch.float64)
    g = torch.randn(64, 7, generator=generator, dtype=torch.float64)
    out, projected, angle = prograd_project(as_grads(d), as_grads(g), lam)
    out = flat(out)
    for i in range(len(d)):
        torch.testing.assert_close(out[i], prograd_reference(d[i], g[i], lam))
        assert bool(projected[i]) == bool(d[i] @ g[i] < 0)
        expected = math.degrees(math.acos(float(F.cosine_similarity(d[i], g[i], dim=0))))
        assert float(angle[i]) == pytest.approx(expected, abs=1e-6)
    assert projected.any() and not projected.all()  # both branches taken


def test_prograd_lambda_one_makes_orthogonal():
    d, g = vec(1.0, 2.0, -1.0), vec(-1.0, 0.5, 3.0)
    out, projected, _ = prograd_project(as_grads(d[None]), as_grads(g[None]), 1.0)
    assert bool(projected[0])
    assert float(flat(out)[0] @ g) == pytest.approx(0.0, abs=1e-12)


def test_prograd_boundaries():
    d = torch.stack([vec(1.0, 0.0), vec(1.0, 2.0), vec(0.0, 0.0), vec(1.0, 2.0)])
    g = torch.stack([vec(0.0, 3.0), vec(0.0, 0.0), vec(1.0, -1.0), vec(-2.0, -4.0)])
    out, projected, angle = prograd_project(as_grads(d), as_grads(g), 1.0)
    # exactly orthogonal: not projected; zero G_g: not projected; zero G_d: unchanged (zero)
    assert projected.tolist() == [False, False, False, True]
    torch.testing.assert_close(flat(out)[:3], d[:3])
    torch.testing.assert_close(flat(out)[3], torch.zeros(7, dtype=torch.float64))  # anti-parallel
    assert angle.tolist()[:3] == pytest.approx([90.0, 90.0, 90.0])
    assert float(angle[3]) == pytest.approx(180.0)


def test_prograd_runs_are_independent():
    generator = torch.Generator().manual_seed(1)
    d = torch.randn(5, 7, generator=generator, dtype=torch.float64)
    g = torch.randn(5, 7, generator=generator, dtype=torch.float64)
    batched = flat(prograd_project(as_grads(d), as_grads(g), 0.8)[0])
    for i in range(5):
        alone = flat(prograd_project(as_grads(d[i : i + 1]), as_grads(g[i : i + 1]), 0.8)[0])
        torch.testing.assert_close(batched[i], alone[0], rtol=0, atol=0)


def step(logits, labels, texts=None) -> Step:
    """A step's forward pass from given logits (S, B, K), labels (S, B) and texts."""
    return Step(texts, logits, Batch(features=None, labels=labels, epoch=0))


def test_prograd_losses_match_torch():
    generator = torch.Generator().manual_seed(2)
    student = torch.randn(2, 6, 4, generator=generator)
    teacher = torch.randn(2, 6, 4, generator=generator)
    labels = torch.randint(0, 4, (2, 6), generator=generator)
    losses = prograd_losses(step(student, labels), teacher)
    for s in range(2):
        kl = F.kl_div(
            F.log_softmax(student[s], -1), F.softmax(teacher[s], -1), reduction="batchmean"
        )
        torch.testing.assert_close(losses["kl"][s], kl)
        torch.testing.assert_close(losses["ce"][s], F.cross_entropy(student[s], labels[s]))


# ---------------------------------------------------------------- SAM (eqs. 4-5)


def quadratic_closure(a: torch.Tensor, target: torch.Tensor):
    """Per-run loss sum(a * (w - target)^2) of a single parameter (S, 7)."""

    def closure(values):
        return {"loss": (a * (values[0] - target) ** 2).sum(1)}

    return closure


def test_sam_gradients_against_equation():
    generator = torch.Generator().manual_seed(3)
    a = torch.rand(3, 7, generator=generator, dtype=torch.float64) + 0.5
    target = torch.randn(3, 7, generator=generator, dtype=torch.float64)
    w = torch.randn(3, 7, generator=generator, dtype=torch.float64).requires_grad_(True)
    before = w.detach().clone()
    rho = 0.3
    g, g_sam = sam_gradients([w], quadratic_closure(a, target), rho)
    expected_g = 2 * a * (before - target)
    e = rho * expected_g / expected_g.norm(dim=1, keepdim=True)
    torch.testing.assert_close(g[0], expected_g)
    torch.testing.assert_close(g_sam[0], 2 * a * (before + e - target))
    torch.testing.assert_close(w.detach(), before)  # w restored (never modified)
    # per run: each run's perturbation uses its own norm
    for i in range(3):
        wi = before[i : i + 1].clone().requires_grad_(True)
        _, alone = sam_gradients([wi], quadratic_closure(a[i : i + 1], target[i : i + 1]), rho)
        torch.testing.assert_close(g_sam[0][i], alone[0][0])


def test_sam_zero_gradient_means_no_perturbation():
    a = torch.ones(1, 7, dtype=torch.float64)
    target = torch.randn(1, 7, dtype=torch.float64)
    w = target.clone().requires_grad_(True)  # at the minimum: g = 0
    g, g_sam = sam_gradients([w], quadratic_closure(a, target), 0.1)
    assert torch.equal(g[0], torch.zeros_like(g[0]))
    assert torch.equal(g_sam[0], torch.zeros_like(g[0]))
    assert float(cosine(g_sam, g)[0]) == 0.0


def test_sam_small_rho_agrees_with_gradient():
    a = torch.rand(2, 7, dtype=torch.float64) + 0.5
    target = torch.randn(2, 7, dtype=torch.float64)
    w = torch.randn(2, 7, dtype=torch.float64).requires_grad_(True)
    g, g_sam = sam_gradients([w], quadratic_closure(a, target), 1e-6)
    assert cosine(g_sam, g).min() > 0.999999


# ---------------------------------------------------------------- GCSAM (eq. 7)


def gcsam_reference(g, s, beta1, beta2):
    c = float(F.cosine_similarity(s, g, dim=0))
    if c <= beta1:
        return g, BRANCH_CE
    if c >= beta2:
        return s, BRANCH_SAM
    z = s + g
    return float(s @ z) / float(z @ z) * z, BRANCH_BISECTOR


def test_gcsam_branches_and_boundaries():
    g = torch.stack([vec(1.0)] * 5 + [vec(0.0), vec(1.0)])
    s = torch.stack(
        [
            vec(1.0, 1.0, 1.0, 1.0),  # cos exactly 0.5 = beta1 -> G_CE
            vec(4.0, 3.0),  # cos exactly 0.8 = beta2 -> G_SAM
            vec(3.0, 4.0),  # cos 0.6 -> bisector
            vec(-1.0, 0.5),  # conflicting -> G_CE
            vec(2.0, 0.0),  # parallel -> G_SAM
            vec(0.0),  # both zero: cos 0 -> G_CE (a zero update)
            vec(1.0, 1.5),  # cos ~0.55 -> bisector
        ]
    )
    out, branch, c = gcsam(as_grads(g), as_grads(s), 0.5, 0.8)
    assert c[:3].tolist() == [0.5, 0.8, 0.6]
    expected_branches = [BRANCH_CE, BRANCH_SAM, BRANCH_BISECTOR, BRANCH_CE, BRANCH_SAM]
    assert branch.tolist() == [*expected_branches, BRANCH_CE, BRANCH_BISECTOR]
    for i in range(len(g)):
        expected, b = gcsam_reference(g[i], s[i], 0.5, 0.8)
        assert int(branch[i]) == b
        torch.testing.assert_close(flat(out)[i], expected)
    # the bisector projection lies on G_SAM + G_CE and keeps G_SAM's component along it
    z = s[2] + g[2]
    assert float(flat(out)[2] @ z) == pytest.approx(float(s[2] @ z))


@pytest.mark.parametrize("beta1", [NO_LOWER_BOUND, -0.5])
def test_gcsam_without_lower_bound(beta1):
    # beta1 <= 0 removes the lower bound (the reference's convention): c < beta2 -> bisector
    g = torch.stack([vec(1.0, 0.0), vec(1.0, 0.0), vec(1.0, 0.0), vec(0.0)])
    s = torch.stack([vec(-1.0, 0.0), vec(-1.0, 1.0), vec(4.0, 3.0), vec(0.0)])
    out, branch, _ = gcsam(as_grads(g), as_grads(s), beta1, 0.8)
    assert branch.tolist() == [BRANCH_BISECTOR, BRANCH_BISECTOR, BRANCH_SAM, BRANCH_BISECTOR]
    torch.testing.assert_close(flat(out)[0], torch.zeros(7, dtype=torch.float64))  # zero z
    torch.testing.assert_close(flat(out)[1], gcsam_reference(g[1], s[1], -2.0, 0.8)[0])
    torch.testing.assert_close(flat(out)[2], s[2])
    torch.testing.assert_close(flat(out)[3], torch.zeros(7, dtype=torch.float64))


def test_gcsam_random_and_independent():
    generator = torch.Generator().manual_seed(4)
    g = torch.randn(200, 7, generator=generator, dtype=torch.float64)
    s = g + 0.8 * torch.randn(200, 7, generator=generator, dtype=torch.float64)
    out, branch, _ = gcsam(as_grads(g), as_grads(s), 0.5, 0.8)
    assert set(branch.tolist()) == {BRANCH_CE, BRANCH_SAM, BRANCH_BISECTOR}
    for i in range(len(g)):
        expected, b = gcsam_reference(g[i], s[i], 0.5, 0.8)
        assert int(branch[i]) == b
        torch.testing.assert_close(flat(out)[i], expected)
        alone = flat(gcsam(as_grads(g[i : i + 1]), as_grads(s[i : i + 1]), 0.5, 0.8)[0])[0]
        torch.testing.assert_close(flat(out)[i], alone, rtol=0, atol=0)


# ---------------------------------------------------------------- KgCoOp


def test_kgcoop_loss_hand_computed():
    texts = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # (S=1, K=2, D=2), normalised
    anchor = torch.tensor([[1.0, 0.0], [0.6, 0.8]])  # cos = 1 and 0.8: mean 0.9
    logits = torch.zeros(1, 3, 2)  # uniform: CE = ln 2
    labels = torch.tensor([[0, 1, 1]])
    losses = kgcoop_losses(step(logits, labels, texts), anchor, 8.0)
    assert float(losses["kg"][0]) == pytest.approx(0.1)
    assert float(losses["ce"][0]) == pytest.approx(math.log(2))
    assert float(losses["loss"][0]) == pytest.approx(math.log(2) + 0.8)


def test_kgcoop_loss_per_run():
    generator = torch.Generator().manual_seed(5)
    texts = F.normalize(torch.randn(3, 4, 8, generator=generator), dim=-1)
    anchor = F.normalize(torch.randn(4, 8, generator=generator), dim=-1)
    logits = torch.randn(3, 5, 4, generator=generator)
    labels = torch.randint(0, 4, (3, 5), generator=generator)
    batched = kgcoop_losses(step(logits, labels, texts), anchor, 8.0)["loss"]
    for i in range(3):
        alone = kgcoop_losses(
            step(logits[i : i + 1], labels[i : i + 1], texts[i : i + 1]), anchor, 8.0
        )
        ce = F.cross_entropy(logits[i], labels[i])
        kg = 1 - F.cosine_similarity(texts[i], anchor, dim=-1).mean()
        torch.testing.assert_close(batched[i], alone["loss"][0])
        torch.testing.assert_close(batched[i], ce + 8.0 * kg)
