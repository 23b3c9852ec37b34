"""Plain re-implementations of the prompt-learning methods, for the wiring tests.

Written from the papers and the behaviour of the official code (CoOp/CoCoOp on Dassl,
ProGrad, KgCoOp, GCSCoOp's SharpCoOp trainer with its GCSAM optimiser), one run at a time
and as directly as possible: the whole 77-token prompt through open_clip's own text
transformer, one full batch per epoch, SGD written out by hand. Nothing here imports the
suite, so a mistake in how the suite wires a loss, a gradient or an initial context into its
update rules cannot be copied here.

Every training function takes the per-epoch image features of the training set (raw, as the
feature cache holds them), the labels, and the hyperparameters, and returns the learned
tensors after the last epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

Tensors = list[torch.Tensor]
#: (learned tensors, normalised image features (B, D), labels (B,)) -> update gradients
StepGradient = Callable[[Tensors, torch.Tensor, torch.Tensor], Tensors]

WARMUP_LR = 1e-5  # Dassl's constant warm-up epoch
SAM_EPS = 1e-12  # GCSAM.first_step: rho / (grad_norm + 1e-12)


class PlainCLIP:
    """An open_clip CLIP read from a checkpoint file, used the way CoOp's PromptLearner and
    TextEncoder use it."""

    def __init__(self, model_name: str, checkpoint: Path) -> None:
        model = open_clip.create_model(model_name, pretrained=None, load_weights=False)
        model.load_state_dict(load_file(str(checkpoint)))
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.logit_scale = float(model.logit_scale.exp())

    def phrase_embeddings(self, phrase: str) -> torch.Tensor:
        """Token embeddings (M, d) of an init phrase: the tokens between [SOS] and [EOT]."""
        tokens = self.tokenizer([phrase])[0]
        return self.model.token_embedding(tokens[1 : int(tokens.argmax())]).clone()

    def prompt_features(self, ctx: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
        """Unnormalised features (K, D) of ``[SOS] ctx name . [EOT]`` for each class name;
        ``ctx`` (M, d) is shared by every class, (K, M, d) is one context per class."""
        m = ctx.shape[-2]
        placeholder = " ".join(["X"] * m)
        tokens = self.tokenizer([f"{placeholder} {name}." for name in names])
        embedded = self.model.token_embedding(tokens)
        per_class = ctx.expand(len(names), -1, -1) if ctx.dim() == 2 else ctx
        x = torch.cat([embedded[:, :1], per_class, embedded[:, 1 + m :]], dim=1)
        return self._encode(x, tokens)

    def text_features(self, texts: Sequence[str]) -> torch.Tensor:
        """Unnormalised features (N, D) of plain texts."""
        tokens = self.tokenizer(list(texts))
        return self._encode(self.model.token_embedding(tokens), tokens)

    def _encode(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        model = self.model
        x = x + model.positional_embedding
        x = model.transformer(x, attn_mask=model.attn_mask)
        x = model.ln_final(x)
        x = x[torch.arange(len(x)), tokens.argmax(dim=-1)]
        return x @ model.text_projection

    def logits(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        """exp(t) * cos: images (B, D) against texts (K, D), neither normalised yet."""
        return self.logit_scale * F.normalize(images, dim=-1) @ F.normalize(texts, dim=-1).T


# ---------------------------------------------------------------- optimisation


def learning_rate(epoch: int, base_lr: float, epochs: int) -> float:
    """Epoch 0 at the warm-up lr; epoch k >= 1 at base_lr * (1 + cos(pi (k - 1) / E)) / 2."""
    if epoch == 0:
        return WARMUP_LR
    return base_lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / epochs))


def train(
    params: Tensors,
    step_gradient: StepGradient,
    views: Sequence[torch.Tensor],
    labels: torch.Tensor,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
) -> Tensors:
    """One full-batch SGD step per epoch (torch.optim.SGD's rule written out: decay added to
    the gradient, the momentum buffer starting at the first step's update); epoch e trains on
    the features of view e."""
    params = [p.detach().clone() for p in params]
    buffers: list[torch.Tensor | None] = [None] * len(params)
    for epoch, features in enumerate(views):
        step_lr = learning_rate(epoch, lr, len(views))
        grads = step_gradient(params, F.normalize(features, dim=-1), labels)
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            update = g + weight_decay * p
            buffers[i] = update if buffers[i] is None else momentum * buffers[i] + update
            params[i] = p - step_lr * buffers[i]
    return params


def gradients(loss: Callable[[Tensors], torch.Tensor], params: Tensors) -> Tensors:
    """Gradients of ``loss(params)`` with respect to ``params``."""
    leaves = [p.detach().requires_grad_(True) for p in params]
    return list(torch.autograd.grad(loss(leaves), leaves))


def flat(grads: Tensors) -> torch.Tensor:
    return torch.cat([g.flatten() for g in grads])


# ---------------------------------------------------------------- losses


def coop_loss(clip: PlainCLIP, names: Sequence[str]) -> Callable:
    """CoOp's cross-entropy of context ``params[0]`` ((M, d), or (K, M, d) with CSC)."""

    def loss(params: Tensors, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(clip.logits(x, clip.prompt_features(params[0], names)), y)

    return loss


def kgcoop_loss(clip: PlainCLIP, names: Sequence[str], anchor: torch.Tensor, weight: float):
    """KgCoOp: CE + weight * (1 - mean_i cos(w_i, w_clip_i)), anchor (K, D)."""

    def loss(params: Tensors, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        texts = clip.prompt_features(params[0], names)
        ce = F.cross_entropy(clip.logits(x, texts), y)
        cos = F.cosine_similarity(texts, anchor, dim=-1)
        return ce + weight * (1 - cos.mean())

    return loss


def add_to_every_token(ctx: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
    """CoCoOp eq. 3: v_m(x) = v_m + pi(x) for every context token m."""
    return ctx + pi


def cocoop_loss(clip: PlainCLIP, names: Sequence[str], shift: Callable = add_to_every_token):
    """CoCoOp: params [ctx (M, d), W1 (H, D), b1, W2 (d, H), b2] (nn.Linear layout); each
    image's context is shifted by pi = meta-net(x) and its prompts encoded on their own."""

    def loss(params: Tensors, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ctx, w1, b1, w2, b2 = params
        pis = F.linear(F.relu(F.linear(x, w1, b1)), w2, b2)  # (B, d)
        rows = []
        for image, pi in zip(x, pis, strict=True):
            texts = clip.prompt_features(shift(ctx, pi), names)
            rows.append(clip.logits(image[None], texts)[0])
        return F.cross_entropy(torch.stack(rows), y)

    return loss


def full_batch(loss: Callable) -> StepGradient:
    """The plain step: the gradient of ``loss``."""
    return lambda params, x, y: gradients(lambda p: loss(p, x, y), params)


# ---------------------------------------------------------------- update rules


def prograd_directions(
    clip: PlainCLIP, names: Sequence[str], teacher: torch.Tensor, ctx: torch.Tensor, x, y
) -> tuple[torch.Tensor, torch.Tensor]:
    """(G_d, G_g): the gradients of CE and of KL(p_zs || p) (F.kl_div, batchmean, T = 1, as
    the official trainer) at context ``ctx``; ``teacher`` (K, D): zero-shot text features."""
    ctx = ctx.detach().requires_grad_(True)
    student = clip.logits(x, clip.prompt_features(ctx, names))
    p_zs = F.softmax(clip.logits(x, teacher), dim=-1)
    kl = F.kl_div(F.log_softmax(student, dim=-1), p_zs, reduction="batchmean")
    ce = F.cross_entropy(student, y)
    (g_d,) = torch.autograd.grad(ce, ctx, retain_graph=True)
    (g_g,) = torch.autograd.grad(kl, ctx)
    return g_d, g_g


def prograd_combine(g_d: torch.Tensor, g_g: torch.Tensor, lambda_: float) -> torch.Tensor:
    """Eq. 4: G_d, or G_d - lambda (G_d . G_g / |G_g|^2) G_g when G_d . G_g < 0."""
    dot = (g_d * g_g).sum()
    if dot < 0:
        return g_d - lambda_ * dot / (g_g * g_g).sum() * g_g
    return g_d


def prograd_step(
    clip: PlainCLIP,
    names: Sequence[str],
    teacher: torch.Tensor,
    lambda_: float,
    dots: list[float],
    combine: Callable = prograd_combine,
) -> StepGradient:
    """ProGrad's step; appends each step's G_d . G_g to ``dots``."""

    def step(params: Tensors, x: torch.Tensor, y: torch.Tensor) -> Tensors:
        g_d, g_g = prograd_directions(clip, names, teacher, params[0], x, y)
        dots.append(float((g_d * g_g).sum()))
        return [combine(g_d, g_g, lambda_)]

    return step


def sam_gradients(loss: Callable, params: Tensors, x, y, rho: float) -> tuple[Tensors, Tensors]:
    """(G_CE, G_SAM): the gradient at w, and at w + rho * g / (|g| + 1e-12)."""
    g = gradients(lambda p: loss(p, x, y), params)
    scale = rho / (flat(g).norm() + SAM_EPS)
    perturbed = [p + scale * gi for p, gi in zip(params, g, strict=True)]
    return g, gradients(lambda p: loss(p, x, y), perturbed)


def scoop_step(loss: Callable, rho: float) -> StepGradient:
    """SCoOp: step with G_SAM."""
    return lambda params, x, y: sam_gradients(loss, params, x, y, rho)[1]


def gcsam(g_sam: Tensors, g_ce: Tensors, beta1: float, beta2: float) -> tuple[Tensors, str, float]:
    """Eq. 7 as GCSAM.gradient_constrain decides it (beta1 <= 0: no lower bound):
    (G_GCSAM, branch "ce" | "sam" | "bisector", cos(G_SAM, G_CE))."""
    a, b = flat(g_sam), flat(g_ce)
    c = float(a @ b / (a.norm() * b.norm()))
    if beta1 > 0 and c <= beta1:
        return g_ce, "ce", c
    if c >= beta2:
        return g_sam, "sam", c
    z = [s + e for s, e in zip(g_sam, g_ce, strict=True)]
    z_norm = flat(z).norm()
    length = a @ flat(z) / z_norm
    return [length * zi / z_norm for zi in z], "bisector", c


def gcscoop_step(
    loss: Callable,
    rho: float,
    beta1: float,
    beta2: float,
    log: list[tuple[str, float]],
    constrain: Callable = gcsam,
) -> StepGradient:
    """GCSCoOp's step; appends each step's (branch, cosine) to ``log``."""

    def step(params: Tensors, x: torch.Tensor, y: torch.Tensor) -> Tensors:
        g_ce, g_sam = sam_gradients(loss, params, x, y, rho)
        out, branch, c = constrain(g_sam, g_ce, beta1, beta2)
        log.append((branch, c))
        return out

    return step
