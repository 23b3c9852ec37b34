"""The reference design's training step, for ``bench`` to time against ours.

What the reference code (CoOp and CoCoOp on Dassl, ProGrad, KgCoOp, GCSCoOp's SharpCoOp)
does in one optimisation step, one run at a time:

- the whole CLIP in fp16 on CUDA, CLIP's own precision (fp32 on the CPU, which has no fast
  fp16), context vectors included;
- the image encoder on every step's batch of pixels: augmented images are never cached;
- the text encoder over all 77 token positions of every prompt;
- what the method adds, described by its :class:`ReferenceDesign`.

A method declares its design with a ``reference_design`` attribute (a
:class:`ReferenceDesign`) on the object its :class:`~benchmark.registry.MethodSpec` points
at; the bench reads it from there, so a plugin's method is timed like a built-in one (the CoOp
family's base declares CoOp's step). The built-in methods declare:

- ``coop``: one image pass, one text forward and backward, cross-entropy;
- ``kgcoop``: as CoOp, plus ``8 (1 - mean cos)`` to anchor text features computed once;
- ``prograd``: the student's image pass, a second image pass by the zero-shot teacher (a
  separate CLIP kept in fp32), one text forward, two backwards (KL with the graph retained,
  then CE), the projection of eq. 4;
- ``scoop``, ``gcscoop``: two forward and backward passes, each with its own image pass
  (the reference calls the whole model twice), the second at the perturbed context; the
  gradient combination of GCSCoOp (cosine, bisector) on top;
- ``cocoop``: one image pass, the meta-net on the normalised image features, then for each
  image of the batch one text pass over the K prompts shifted by its meta-net output; one
  backward.

Not counted, to the reference's advantage: JPEG decoding and augmentation (overlapped with
the GPU by the data loader's workers) and the reference's per-step logging.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.backbone import Backbone
from benchmark.prompting.text import placeholders

SAM_RHO = 0.1  # the perturbation radius of the SAM-style passes (SCoOp/GCSCoOp's default)
BISECTOR = (0.5, 0.8)  # GCSCoOp's default beta1, beta2

#: Gradients of one step, in the order they were computed -> the gradient the step applies.
Combine = Callable[[Sequence[torch.Tensor]], torch.Tensor]


def last_gradient(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """The last gradient computed (CoOp's only one; SAM's gradient at the perturbed context)."""
    return grads[-1]


@dataclass(frozen=True)
class ReferenceDesign:
    """One optimisation step of a method in its reference code, as the bench re-enacts it.

    ``passes``: forward and backward passes per step, each with its own image-encoder pass
    over the batch and a text pass over the K prompts; every pass after the first runs at
    the context perturbed by ``SAM_RHO * g / |g|`` (g: the previous pass's gradient), as
    sharpness-aware methods do. ``teacher``: an image pass by a separate fp32 zero-shot CLIP
    whose predictions the student's are pulled towards by a KL term, backpropagated on its
    own (graph retained) before the cross-entropy: two backwards per pass (ProGrad).
    ``anchor_weight``: weight of ``1 - mean cos`` between the learned and fixed hand-crafted
    text features, added to the cross-entropy (KgCoOp: 8; 0: no such term).
    ``per_image_prompts``: a meta-net maps each image's feature to a shift of the context,
    and every image of the batch has its own text pass over the K shifted prompts (CoCoOp).
    ``combine``: the step's gradients, in the order computed, to the gradient applied.
    """

    passes: int = 1
    teacher: bool = False
    anchor_weight: float = 0.0
    per_image_prompts: bool = False
    combine: Combine = last_gradient

    def __post_init__(self) -> None:
        if self.passes < 1:
            raise ValueError(f"a reference design makes at least one pass, got {self.passes}")
        if self.anchor_weight and self.per_image_prompts:
            raise ValueError(
                "an anchor term needs text features shared by the batch; per-image "
                "prompts have none"
            )

    @property
    def image_passes(self) -> int:
        """Image-encoder passes over the batch per step."""
        return self.passes + int(self.teacher)


def project_conflicting(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """ProGrad's eq. 4 on (teacher KL gradient, CE gradient): the CE gradient, without its
    component against the KL gradient when the two conflict."""
    g_kl, g_ce = grads
    d = (g_ce * g_kl).sum()
    return g_ce - d / (g_kl * g_kl).sum() * g_kl if d < 0 else g_ce


def bisector(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """GCSCoOp's eq. 7 on (CE gradient, SAM gradient) with its default beta1, beta2."""
    g, g_sam = grads
    c = F.cosine_similarity(g_sam.flatten(), g.flatten(), dim=0)
    if c <= BISECTOR[0]:
        return g
    if c >= BISECTOR[1]:
        return g_sam
    z = g_sam + g
    return (g_sam * z).sum() / (z * z).sum() * z


def design_of(name: str, method: object) -> ReferenceDesign | None:
    """The reference design of a registered method: its ``reference_design`` attribute, or
    None (the method cannot be benched)."""
    declared = getattr(method, "reference_design", None)
    if declared is None:
        return None
    if not isinstance(declared, ReferenceDesign):
        raise TypeError(
            f"method {name!r}: reference_design must be a "
            f"benchmark.perf.reference_step.ReferenceDesign, got {type(declared).__name__}"
        )
    return declared


def reference_dtype(device: torch.device) -> torch.dtype:
    return torch.float16 if device.type == "cuda" else torch.float32


class ReferencePrompts:
    """Prompts ``[SOS] ctx [CLASS] . [EOT]`` padded to the full 77 tokens, reference style."""

    def __init__(self, backbone: Backbone, classnames: tuple[str, ...], n_ctx: int) -> None:
        dtype = reference_dtype(backbone.device)
        self.tower = backbone.text
        tokens = backbone.tokenize([f"{placeholders(n_ctx)} {name}." for name in classnames])
        with torch.no_grad():
            embedded = self.tower.token_embedding(tokens).to(dtype)
        self.prefix, self.suffix = embedded[:, :1], embedded[:, 1 + n_ctx :]
        self.eot = tokens.argmax(-1)
        self.n_classes = len(classnames)

    def features(self, ctx: torch.Tensor) -> torch.Tensor:
        """Normalised text features (K, D) of the context ``ctx`` (M, d) shared by all classes."""
        k, tower = self.n_classes, self.tower
        x = torch.cat([self.prefix, ctx.expand(k, -1, -1), self.suffix], dim=1)
        x = x + tower.positional_embedding.to(x.dtype)
        x = tower.transformer(x, attn_mask=tower.attn_mask)
        x = tower.ln_final(x)[torch.arange(k, device=x.device), self.eot]
        return F.normalize(x @ tower.text_projection, dim=-1)


def reference_step(
    backbone: Backbone,
    teacher: nn.Module,
    design: ReferenceDesign,
    classnames: tuple[str, ...],
    batch: int,
    n_ctx: int,
) -> tuple[Callable[[], None], torch.Tensor]:
    """One reference-design step as a function, and the context it trains; ``backbone``
    holds the CLIP in the reference precision, ``teacher`` the fp32 CLIP of a zero-shot
    teacher (used when ``design.teacher``)."""
    device, dtype = backbone.device, reference_dtype(backbone.device)
    model = backbone.model
    prompts = ReferencePrompts(backbone, classnames, n_ctx)
    k = len(classnames)
    generator = torch.Generator().manual_seed(0)
    width = prompts.prefix.shape[-1]
    ctx = (torch.randn(n_ctx, width, generator=generator) * 0.02).to(device, dtype)
    ctx.requires_grad_(True)
    size = backbone.image_size
    pixels = torch.randn(batch, 3, size, size, generator=generator).to(device, dtype)
    labels = torch.randint(0, k, (batch,), generator=generator).to(device)
    anchor = F.normalize(torch.randn(k, backbone.embed_dim, generator=generator), dim=-1)
    anchor = anchor.to(device)
    scale = backbone.logit_scale
    learned = [ctx]
    if design.per_image_prompts:
        image_dim = backbone.embed_dim
        meta = nn.Sequential(
            nn.Linear(image_dim, image_dim // 16), nn.ReLU(), nn.Linear(image_dim // 16, width)
        ).to(device, dtype)
        learned += list(meta.parameters())

    def images(encoder: nn.Module = model, kind: torch.dtype = dtype) -> torch.Tensor:
        with torch.no_grad():
            return F.normalize(encoder.encode_image(pixels.to(kind)), dim=-1)

    def logits(context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The student's logits (B, K), and its text features where they are shared."""
        features = images()
        if design.per_image_prompts:
            shifts = meta(features)
            rows = [
                scale * f @ prompts.features(context + shift).T
                for f, shift in zip(features, shifts, strict=True)
            ]
            return torch.stack(rows), None
        texts = prompts.features(context)
        return scale * features @ texts.T, texts

    def one_pass(context: torch.Tensor) -> list[torch.Tensor]:
        """A forward and its backward(s); the gradients of the context, in order."""
        student, texts = logits(context)
        grads = []
        if design.teacher:
            teacher_logits = scale * images(teacher, torch.float32) @ anchor.T
            log_p = F.log_softmax(student.float(), dim=-1)
            kl = -(F.softmax(teacher_logits, dim=-1) * log_p).sum(1).mean()
            kl.backward(retain_graph=True)
            grads.append(ctx.grad.clone())
            ctx.grad = None
        loss = F.cross_entropy(student, labels)
        if design.anchor_weight:
            loss = loss + design.anchor_weight * (1 - (texts * anchor.to(dtype)).sum(-1).mean())
        loss.backward()
        grads.append(ctx.grad.clone())
        ctx.grad = None
        return grads

    optimiser = torch.optim.SGD(learned, lr=0.002, momentum=0.9, weight_decay=5e-4)

    def step() -> None:
        optimiser.zero_grad()
        grads = one_pass(ctx)
        for _ in range(design.passes - 1):
            g = grads[-1]
            with torch.no_grad():
                e = SAM_RHO * g / (g.norm() + 1e-12)
                ctx.add_(e)
            grads += one_pass(ctx)
            with torch.no_grad():
                ctx.sub_(e)
        ctx.grad = design.combine(grads)
        optimiser.step()

    return step, ctx


def image_pass(backbone: Backbone, batch: int) -> Callable[[], None]:
    """The reference's image-encoder pass over a batch, in the reference precision."""
    size = backbone.image_size
    dtype = reference_dtype(backbone.device)
    pixels = torch.randn(batch, 3, size, size, device=backbone.device, dtype=dtype)

    def encode() -> None:
        with torch.no_grad():
            backbone.model.encode_image(pixels)

    return encode
