"""The reference design's training step, for ``bench`` to time against ours.

What the reference code (CoOp and CoCoOp on Dassl, ProGrad, KgCoOp, GCSCoOp's SharpCoOp)
does in one optimisation step, one run at a time:

- the whole CLIP in fp16 on CUDA, CLIP's own precision (fp32 on the CPU, which has no fast
  fp16), context vectors included;
- the image encoder on every step's batch of pixels: augmented images are never cached;
- the text encoder over all 77 token positions of every prompt;
- per method:

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

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.backbone import Backbone
from benchmark.prompting.text import PLACEHOLDER

#: Methods with a reference-design step, and the image-encoder passes each step makes.
IMAGE_PASSES = {"coop": 1, "kgcoop": 1, "cocoop": 1, "prograd": 2, "scoop": 2, "gcscoop": 2}
KG_WEIGHT = 8.0  # KgCoOp's lambda
SAM_RHO = 0.1  # SCoOp/GCSCoOp's default rho
BISECTOR = (0.5, 0.8)  # GCSCoOp's default beta1, beta2


def reference_dtype(device: torch.device) -> torch.dtype:
    return torch.float16 if device.type == "cuda" else torch.float32


class ReferencePrompts:
    """Prompts ``[SOS] ctx [CLASS] . [EOT]`` padded to the full 77 tokens, reference style."""

    def __init__(self, backbone: Backbone, classnames: tuple[str, ...], n_ctx: int) -> None:
        dtype = reference_dtype(backbone.device)
        self.tower = backbone.text
        placeholder = " ".join([PLACEHOLDER] * n_ctx)
        tokens = backbone.tokenize([f"{placeholder} {name}." for name in classnames])
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
    method: str,
    classnames: tuple[str, ...],
    batch: int,
    n_ctx: int,
) -> tuple[Callable[[], None], torch.Tensor]:
    """One reference-design step of ``method`` as a function, and the context it trains;
    ``backbone`` holds the CLIP in the reference precision, ``teacher`` the fp32 CLIP of
    ProGrad's zero-shot teacher."""
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

    def images(encoder: nn.Module = model, kind: torch.dtype = dtype) -> torch.Tensor:
        with torch.no_grad():
            return F.normalize(encoder.encode_image(pixels.to(kind)), dim=-1)

    def ce() -> torch.Tensor:
        return F.cross_entropy(scale * images() @ prompts.features(ctx).T, labels)

    learned = [ctx]
    if method == "coop":

        def update() -> None:
            ce().backward()

    elif method == "kgcoop":

        def update() -> None:
            texts = prompts.features(ctx)
            loss = F.cross_entropy(scale * images() @ texts.T, labels)
            kg = 1 - (texts * anchor.to(dtype)).sum(-1).mean()
            (loss + KG_WEIGHT * kg).backward()

    elif method == "prograd":

        def update() -> None:
            student = scale * images() @ prompts.features(ctx).T
            teacher_logits = scale * images(teacher, torch.float32) @ anchor.T
            log_p = F.log_softmax(student.float(), dim=-1)
            kl = -(F.softmax(teacher_logits, dim=-1) * log_p).sum(1).mean()
            kl.backward(retain_graph=True)
            g_g = ctx.grad.clone()
            ctx.grad = None
            F.cross_entropy(student, labels).backward()
            g_d = ctx.grad
            d = (g_d * g_g).sum()
            if d < 0:
                ctx.grad = g_d - d / (g_g * g_g).sum() * g_g

    elif method in ("scoop", "gcscoop"):

        def update() -> None:
            ce().backward()
            g = ctx.grad.clone()
            e = SAM_RHO * g / (g.norm() + 1e-12)
            ctx.grad = None
            with torch.no_grad():
                ctx.add_(e)
            ce().backward()
            with torch.no_grad():
                ctx.sub_(e)
            if method == "gcscoop":
                g_sam = ctx.grad
                c = F.cosine_similarity(g_sam.flatten(), g.flatten(), dim=0)
                if c <= BISECTOR[0]:
                    ctx.grad = g
                elif c < BISECTOR[1]:
                    z = g_sam + g
                    ctx.grad = (g_sam * z).sum() / (z * z).sum() * z

    elif method == "cocoop":
        image_dim = backbone.embed_dim
        meta = nn.Sequential(
            nn.Linear(image_dim, image_dim // 16), nn.ReLU(), nn.Linear(image_dim // 16, width)
        ).to(device, dtype)
        learned += list(meta.parameters())

        def update() -> None:
            features = images()
            shifts = meta(features)
            logits = torch.stack(
                [
                    scale * f @ prompts.features(ctx + shift).T
                    for f, shift in zip(features, shifts, strict=True)
                ]
            )
            F.cross_entropy(logits, labels).backward()

    else:
        raise ValueError(f"no reference-design step for {method!r}; valid: {sorted(IMAGE_PASSES)}")

    optimiser = torch.optim.SGD(learned, lr=0.002, momentum=0.9, weight_decay=5e-4)

    def step() -> None:
        optimiser.zero_grad()
        update()
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
