"""The frozen text encoder, called on learned context vectors.

A prompt is ``[SOS] ctx_1 .. ctx_M <class-name tokens> . [EOT]`` (class token at the end, as
CoOp's default), possibly with fixed tokens between the context and the class name (see
:class:`PromptEncoder`). Its feature is ``ln_final`` at the EOT position times ``text_projection``.

The text transformer is causal, so the output at the EOT position depends only on the
positions before it: every position after the last EOT of a batch is cut off before the
transformer runs. That is exact, and about 2-3x fewer tokens than the padded 77.

Causality gives a second exact saving: when the K prompts of a class list share their
context (everything but CSC), their first 1 + M positions ``[SOS] ctx`` are the same
sequence, whose hidden states never depend on what follows. The shared prefix runs once; each
class's suffix (its name, ".", [EOT]) runs against the prefix's keys and values. For M = 16
and short class names that is about 3x fewer tokens again; the attention is unchanged.

A third exact saving: class names differ in length, and a batch padded to its longest name
runs every shorter one's padding through the transformer too. The classes are grouped by the
length of their suffix and each group runs at its own length (on the mini world's source, 4.2
tokens per class instead of 6).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock
from torch import nn

from benchmark.backbone import Backbone
from benchmark.errors import UserError

PLACEHOLDER = "X"


def placeholders(n: int) -> str:
    """``n`` placeholder words: the text a context of ``n`` vectors stands in for."""
    return " ".join([PLACEHOLDER] * n)


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
    block: ResidualAttentionBlock, prefix: torch.Tensor, suffixes: list[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One pre-norm block on prefixes (G, P, d) and groups of their suffixes (G, K_g, L_g, d).

    Prefix positions attend causally among themselves; suffix position j attends to every
    prefix position and to suffix positions <= j: the causal mask of the whole sequence.
    """
    attn = block.attn
    h = attn.num_heads

    def qkv(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        q, k, v = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, -1)
        return tuple(_heads(t, h) for t in (q, k, v))

    def residual(x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        x = x + block.ls_1(attn.out_proj(_merge(attended)))
        return x + block.ls_2(block.mlp(block.ln_2(x)))

    qp, kp, vp = qkv(prefix)
    n_p = prefix.shape[1]
    outputs = []
    for suffix in suffixes:
        qs, ks, vs = qkv(suffix)
        k, n_s = suffix.shape[1], suffix.shape[2]
        keys = torch.cat([kp[:, None].expand(-1, k, -1, -1, -1), ks], dim=-2)
        values = torch.cat([vp[:, None].expand(-1, k, -1, -1, -1), vs], dim=-2)
        allowed = torch.ones(n_s, n_p + n_s, dtype=torch.bool, device=suffix.device).tril(n_p)
        attended = F.scaled_dot_product_attention(qs, keys, values, attn_mask=allowed)
        outputs.append(residual(suffix, attended))
    prefix = residual(prefix, F.scaled_dot_product_attention(qp, kp, vp, is_causal=True))
    return prefix, outputs


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
        """Token ids cut after the last EOT of the batch, and each text's EOT position.

        A text longer than the encoder's context is refused (:class:`UserError`): the
        tokenizer would cut it, class name included, without a word."""
        tokens = self.backbone.tokenize(texts)
        eot = tokens.argmax(dim=-1)
        self._check_length(texts, tokens.shape[1], eot)
        return tokens[:, : int(eot.max()) + 1], eot

    def _check_length(self, texts: list[str], limit: int, eot: torch.Tensor) -> None:
        encode = getattr(self.backbone.tokenizer, "encode", None)
        if encode is None:  # a tokenizer that cannot count a text's tokens
            return
        for i in (eot == limit - 1).nonzero()[:, 0].tolist():  # filled up: cut, or exact
            length = len(encode(texts[i])) + 2  # with [SOS] and [EOT]
            if length > limit:
                shown = texts[i] if len(texts[i]) <= 80 else "…" + texts[i][-79:]
                raise UserError(
                    f"the prompt {shown!r} is {length} tokens, more than the text encoder's "
                    f"{limit}: use a shorter context (n_ctx, ctx_init) or class name"
                )

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
        self, prefix: torch.Tensor, suffixes: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> list[torch.Tensor]:
        """Text features [(G, K_g, D)] of G prefixes (G, P, d), each followed by every suffix
        of every group (suffixes (K_g, L_g, d) of one length, read at eot (K_g,), positions
        within the suffix).

        Equal to :meth:`encode` on the concatenated sequences (see the module docstring);
        only for towers where :attr:`shares_prefixes` is true.
        """
        tower = self.tower
        n_p = prefix.shape[1]
        with self.backbone.autocast():
            position = tower.positional_embedding.to(prefix.dtype)
            prefix = prefix + position[:n_p]
            states = [
                (suffix + position[n_p : n_p + suffix.shape[1]]).expand(len(prefix), -1, -1, -1)
                for suffix, _ in suffixes
            ]
            for block in tower.transformer.resblocks:
                prefix, states = _shared_prefix_block(block, prefix, states)
            features = []
            for state, (_, eot) in zip(states, suffixes, strict=True):
                eot = eot.to(state.device)
                at_eot = state[:, torch.arange(len(eot), device=state.device), eot]  # (G, K_g, d)
                features.append(self._project(at_eot.flatten(0, 1)).view(len(prefix), len(eot), -1))
            return features

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """Text features (N, D) of plain texts (hand-crafted prompts)."""
        tokens, eot = self.tokens(texts)
        return self.encode(self.embed(tokens), eot)


class _LengthGroup:
    """The classes whose suffix (name, ".", [EOT]) has one token length."""

    def __init__(self, classes: torch.Tensor, suffix: torch.Tensor, eot: torch.Tensor) -> None:
        self.classes = classes  # (K_g,) indices into the encoder's class list
        self.suffix = suffix  # (K_g, L_g, d)
        self.eot = eot  # (K_g,) EOT positions within the suffix


class PromptEncoder:
    """Text features of learned context vectors for a fixed list of class names.

    The prompts are ``[SOS] <lead> <class name> . [EOT]`` with the first ``n_ctx`` tokens of
    ``lead`` replaced by the context (default lead: ``n_ctx`` placeholders); tokens of the lead
    after them stay fixed (see :mod:`benchmark.prompting.context`).
    """

    def __init__(
        self, tower: TextTower, classnames: tuple[str, ...], n_ctx: int, lead: str | None = None
    ) -> None:
        self.tower = tower
        self.n_ctx = n_ctx
        lead = placeholders(n_ctx) if lead is None else lead
        texts = [f"{lead} {name}." if lead else f"{name}." for name in classnames]
        tokens, eot = tower.tokens(texts)
        embedded = tower.embed(tokens)
        self.sos = embedded[0, :1]  # (1, d)
        start = 1 + n_ctx
        self.groups = []
        for last in eot.unique().tolist():
            classes = (eot == last).nonzero()[:, 0]
            suffix = embedded[classes, start : last + 1]  # class name, ".", [EOT]
            self.groups.append(_LengthGroup(classes, suffix, eot[classes] - start))
        grouped = torch.cat([g.classes for g in self.groups])
        self.class_order = torch.empty_like(grouped)
        self.class_order[grouped] = torch.arange(len(grouped))
        self.n_classes = len(classnames)

    def __call__(self, ctx: torch.Tensor) -> torch.Tensor:
        """Text features (*lead, K, D) of a context (*lead, 1|K, M, d): one shared by every
        class, or one per class."""
        *lead, n, m, d = ctx.shape
        if m != self.n_ctx:
            raise ValueError(f"context has {m} tokens, this encoder was built for {self.n_ctx}")
        if n == 1 and self.tower.shares_prefixes:
            prefixes = torch.cat([self.sos.expand(*lead, 1, d), ctx[..., 0, :, :]], dim=-2)
            parts = self.tower.encode_shared(
                prefixes.reshape(-1, 1 + m, d), [(g.suffix, g.eot) for g in self.groups]
            )
        else:
            parts = [self._encode_whole(ctx, group) for group in self.groups]
        features = torch.cat(parts, dim=-2)[..., self.class_order.to(ctx.device), :]
        return features.view(*lead, self.n_classes, -1)

    def _encode_whole(self, ctx: torch.Tensor, group: _LengthGroup) -> torch.Tensor:
        """(G, K_g, D): one group's whole sequences ``[SOS] ctx suffix`` through the tower."""
        *lead, n, m, d = ctx.shape
        k = len(group.classes)
        own = ctx if n == 1 else ctx[..., group.classes.to(ctx.device), :, :]
        x = torch.cat(
            [
                self.sos.expand(*lead, k, 1, d),
                own.expand(*lead, k, m, d),
                group.suffix.expand(*lead, *group.suffix.shape),
            ],
            dim=-2,
        )
        runs = x[..., 0, 0, 0].numel()
        features = self.tower.encode(x.reshape(-1, *x.shape[-2:]), (group.eot + 1 + m).repeat(runs))
        return features.view(runs, k, -1)
