"""The frozen text encoder, called on learned context vectors.

A prompt is ``[SOS] ctx_1 .. ctx_M <class-name tokens> . [EOT]`` (class token at the end, as
CoOp's default). Its feature is ``ln_final`` at the EOT position times ``text_projection``.

The text transformer is causal, so the output at the EOT position depends only on the
positions before it: every position after the last EOT of a batch is cut off before the
transformer runs. That is exact, and about 2-3x fewer tokens than the padded 77.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmark.backbone import Backbone

PLACEHOLDER = "X"


def _pool_type(tower: nn.Module) -> str:
    return getattr(tower, "text_pool_type", "argmax")


class TextTower:
    """The parts of the frozen text transformer, run on token embeddings."""

    def __init__(self, backbone: Backbone) -> None:
        self.backbone = backbone
        self.tower = backbone.text
        if _pool_type(self.tower) != "argmax":
            raise ValueError(
                f"{backbone.spec.name}: prompt learning needs EOT (argmax) pooling of the text "
                f"tower, this model pools by {_pool_type(self.tower)!r}"
            )

    def tokens(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids cut after the last EOT of the batch, and each text's EOT position."""
        tokens = self.backbone.tokenize(texts)
        eot = tokens.argmax(dim=-1)
        return tokens[:, : int(eot.max()) + 1], eot

    @torch.no_grad()
    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.tower.token_embedding(tokens).float()

    def encode(self, x: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        """Text features (N, D) of embedded prompts ``x`` (N, L, d) read at ``eot`` (N,)."""
        tower = self.tower
        length = x.shape[1]
        with self.backbone.autocast():
            x = x + tower.positional_embedding[:length].to(x.dtype)
            mask = tower.attn_mask
            if mask is not None:
                mask = mask[:length, :length]
            x = tower.transformer(x, attn_mask=mask)
            x = tower.ln_final(x)
            x = x[torch.arange(x.shape[0], device=x.device), eot]
            projection = tower.text_projection
            x = projection(x) if isinstance(projection, nn.Linear) else x @ projection
        return x.float()

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """Text features (N, D) of plain texts (hand-crafted prompts)."""
        tokens, eot = self.tokens(texts)
        return self.encode(self.embed(tokens), eot)


class PromptEncoder:
    """Text features of learned context vectors for a fixed list of class names."""

    def __init__(self, tower: TextTower, classnames: tuple[str, ...], n_ctx: int) -> None:
        self.tower = tower
        self.n_ctx = n_ctx
        placeholder = " ".join([PLACEHOLDER] * n_ctx)
        texts = [f"{placeholder} {name}." if n_ctx else f"{name}." for name in classnames]
        tokens, self.eot = tower.tokens(texts)
        embedded = tower.embed(tokens)
        self.prefix = embedded[:, :1]  # [SOS]
        self.suffix = embedded[:, 1 + n_ctx :]  # class name, ".", [EOT], cut padding
        self.n_classes = len(classnames)

    def embeddings(self, ctx: torch.Tensor) -> torch.Tensor:
        """Prompt embeddings (*lead, K, L, d) for context ``ctx`` of shape (*lead, 1|K, M, d)."""
        *lead, _, m, d = ctx.shape
        if m != self.n_ctx:
            raise ValueError(f"context has {m} tokens, this encoder was built for {self.n_ctx}")
        k = self.n_classes
        return torch.cat(
            [
                self.prefix.expand(*lead, k, 1, d),
                ctx.expand(*lead, k, m, d),
                self.suffix.expand(*lead, k, *self.suffix.shape[1:]),
            ],
            dim=-2,
        )

    def __call__(self, ctx: torch.Tensor) -> torch.Tensor:
        """Text features (*lead, K, D): one context per class (``1``) or per class (``K``)."""
        x = self.embeddings(ctx)
        *lead, k, length, d = x.shape
        eot = self.eot.repeat(x[..., 0, 0].numel() // k)
        features = self.tower.encode(x.reshape(-1, length, d), eot)
        return features.view(*lead, k, -1)
