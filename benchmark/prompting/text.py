"""The frozen text encoder, called on learned context vectors.

A prompt is ``[SOS] ctx_1 .. ctx_M <class-name tokens> . [EOT]`` (class token at the end, as
CoOp's default). Its feature is ``ln_final`` at the EOT position times ``text_projection``.

The text transformer is causal, so the output at the EOT position depends only on the
positions before it: every position after the last EOT of a batch is cut off before the
transformer runs. That is exact, and about 2-3x fewer tokens than the padded 77.

Causality gives a second exact saving: when the K prompts of a class list share their
context (everything but CSC), their first 1 + M positions ``[SOS] ctx`` are the same
sequence, whose hidden states never depend on what follows. The shared prefix runs once; each
class's suffix (its name, ".", [EOT]) runs against the prefix's keys and values. For M = 16
and short class names that is about 3x fewer tokens again; the attention is unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock
from torch import nn

from benchmark.backbone import Backbone

PLACEHOLDER = "X"


def _pool_type(tower: nn.Module) -> str:
    return getattr(tower, "text_pool_type", "argmax")


def _plain_blocks(tower: nn.Module) -> bool:
    """Whether every block is open_clip's standard pre-norm block (the shared-prefix path
    re-implements exactly that block)."""
    blocks = getattr(tower.transformer, "resblocks", [])
    return len(blocks) > 0 and all(
        type(b) is ResidualAttentionBlock and not hasattr(b, "ln_1_kv") and b.attn.batch_first
        for b in blocks
    )


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(..., L, d) -> (..., heads, L, d / heads)."""
    return x.unflatten(-1, (n_heads, -1)).transpose(-2, -3)


def _merge(x: torch.Tensor) -> torch.Tensor:
    """(..., heads, L, d / heads) -> (..., L, d)."""
    return x.transpose(-2, -3).flatten(-2)


def _shared_prefix_block(
    block: ResidualAttentionBlock, prefix: torch.Tensor, suffix: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One pre-norm block on prefixes (G, P, d) and their suffixes (G, K, L, d).

    Prefix positions attend causally among themselves; suffix position j attends to every
    prefix position and to suffix positions <= j: the causal mask of the whole sequence.
    """
    attn = block.attn
    h = attn.num_heads
    qp, kp, vp = F.linear(block.ln_1(prefix), attn.in_proj_weight, attn.in_proj_bias).chunk(3, -1)
    qs, ks, vs = F.linear(block.ln_1(suffix), attn.in_proj_weight, attn.in_proj_bias).chunk(3, -1)
    qp, kp, vp, qs, ks, vs = (_heads(t, h) for t in (qp, kp, vp, qs, ks, vs))
    out_p = F.scaled_dot_product_attention(qp, kp, vp, is_causal=True)
    k = suffix.shape[1]
    keys = torch.cat([kp[:, None].expand(-1, k, -1, -1, -1), ks], dim=-2)
    values = torch.cat([vp[:, None].expand(-1, k, -1, -1, -1), vs], dim=-2)
    n_p, n_s = prefix.shape[1], suffix.shape[2]
    allowed = torch.ones(n_s, n_p + n_s, dtype=torch.bool, device=suffix.device).tril(n_p)
    out_s = F.scaled_dot_product_attention(qs, keys, values, attn_mask=allowed)
    prefix = prefix + block.ls_1(attn.out_proj(_merge(out_p)))
    suffix = suffix + block.ls_1(attn.out_proj(_merge(out_s)))
    prefix = prefix + block.ls_2(block.mlp(block.ln_2(prefix)))
    suffix = suffix + block.ls_2(block.mlp(block.ln_2(suffix)))
    return prefix, suffix


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
        self.shares_prefixes = self.tower.attn_mask is not None and _plain_blocks(self.tower)

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
            return self._project(x[torch.arange(x.shape[0], device=x.device), eot])

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        """Text features (N, D) from the hidden states (N, d) at the EOT positions."""
        x = self.tower.ln_final(x)
        projection = self.tower.text_projection
        x = projection(x) if isinstance(projection, nn.Linear) else x @ projection
        return x.float()

    def encode_shared(
        self, prefix: torch.Tensor, suffix: torch.Tensor, eot: torch.Tensor
    ) -> torch.Tensor:
        """Text features (G, K, D) of G prefixes (G, P, d), each followed by K suffixes
        (K, L, d) of the same length, read at ``eot`` (K,) (positions within the suffix).

        Equal to :meth:`encode` on the concatenated sequences (see the module docstring);
        only for towers where :attr:`shares_prefixes` is true.
        """
        tower = self.tower
        n_p, n_s = prefix.shape[1], suffix.shape[1]
        with self.backbone.autocast():
            position = tower.positional_embedding[: n_p + n_s]
            prefix = prefix + position[:n_p].to(prefix.dtype)
            suffix = (suffix + position[n_p:].to(suffix.dtype)).expand(len(prefix), -1, -1, -1)
            for block in tower.transformer.resblocks:
                prefix, suffix = _shared_prefix_block(block, prefix, suffix)
            eot = eot.to(suffix.device)
            at_eot = suffix[:, torch.arange(len(eot), device=suffix.device), eot]  # (G, K, d)
            return self._project(at_eot.flatten(0, 1)).view(len(prefix), len(eot), -1)

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

    def _shape(self, ctx: torch.Tensor) -> tuple[int, ...]:
        """(*lead, M, d) of a context (*lead, 1|K, M, d) built for this encoder's M."""
        *lead, _, m, d = ctx.shape
        if m != self.n_ctx:
            raise ValueError(f"context has {m} tokens, this encoder was built for {self.n_ctx}")
        return (*lead, m, d)

    def embeddings(self, ctx: torch.Tensor) -> torch.Tensor:
        """Prompt embeddings (*lead, K, L, d) for context ``ctx`` of shape (*lead, 1|K, M, d)."""
        *lead, m, d = self._shape(ctx)
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
        if ctx.shape[-3] == 1 and self.tower.shares_prefixes:
            *lead, m, d = self._shape(ctx)
            prefixes = torch.cat([self.prefix[0].expand(*lead, 1, d), ctx[..., 0, :, :]], dim=-2)
            features = self.tower.encode_shared(
                prefixes.reshape(-1, 1 + m, d), self.suffix, self.eot - (1 + m)
            )
            return features.view(*lead, self.n_classes, -1)
        x = self.embeddings(ctx)
        *lead, k, length, d = x.shape
        eot = self.eot.repeat(x[..., 0, 0].numel() // k)
        features = self.tower.encode(x.reshape(-1, length, d), eot)
        return features.view(*lead, k, -1)
