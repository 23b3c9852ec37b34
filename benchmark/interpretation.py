"""Learned context read as words: each context vector's nearest vocabulary tokens.

CoOp's interpretation (KaiyangZhou/CoOp ``interpret_prompt.py``): the Euclidean distance
(``torch.cdist``) from each learned context vector to every row of the frozen text
encoder's token-embedding table, and the K closest tokens. The reference reads a context
shared by the classes and leaves class-specific context unimplemented; here a class-specific
context (K, M, d) is read class by class. The tensors read are those a learned state names
as its ``contexts`` (:class:`benchmark.method.LearnedState`), as saved: CoCoOp's context
without the meta-net's image-conditioned shift.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from benchmark.artifacts import Artifact
from benchmark.backbone import Backbone


@dataclass(frozen=True)
class Neighbour:
    """A vocabulary token near a context vector: its id, its BPE string (``photo</w>``), the
    text it stands for (``photo``) and the Euclidean distance."""

    id: int
    token: str
    word: str
    distance: float


@dataclass(frozen=True)
class Reading:
    """The nearest tokens of the context vectors of one tensor (and class, for
    class-specific context), in prompt order."""

    tensor: str
    classname: str | None
    nearest: list[list[Neighbour]]


def nearest_tokens(
    vectors: torch.Tensor, embedding: torch.Tensor, top: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances and token ids (M, top) of the ``top`` rows of ``embedding`` (V, d) closest
    to each of ``vectors`` (M, d), closest first."""
    distances = torch.cdist(
        vectors.float(), embedding.float(), compute_mode="donot_use_mm_for_euclid_dist"
    )
    return distances.topk(min(top, embedding.shape[0]), dim=1, largest=False)


def _spelling(tokenizer: Any, token_id: int) -> tuple[str, str]:
    """The BPE string of a token and the text it decodes to (open_clip's CLIP tokenizer;
    another tokenizer's tokens are shown by id)."""
    decoder = getattr(tokenizer, "decoder", None)
    if not isinstance(decoder, dict) or token_id not in decoder:
        return f"<{token_id}>", f"<{token_id}>"
    return decoder[token_id], tokenizer.decode([token_id]).strip()


def read(artifact: Artifact, backbone: Backbone, top: int) -> list[Reading]:
    """The ``top`` nearest tokens of every context vector of ``artifact``, on ``backbone``
    (the one it was trained with)."""
    embedding = backbone.text.token_embedding.weight.detach().cpu()
    readings = []
    for name in artifact.state.contexts:
        ctx = artifact.state.tensors[name]
        per_class = ctx.dim() == 3
        classes = artifact.provenance.classes if per_class else (None,)
        for classname, vectors in zip(classes, ctx if per_class else ctx[None], strict=True):
            distances, ids = nearest_tokens(vectors, embedding, top)
            nearest = [
                [
                    Neighbour(i, *_spelling(backbone.tokenizer, i), d)
                    for i, d in zip(row_ids.tolist(), row_distances.tolist(), strict=True)
                ]
                for row_ids, row_distances in zip(ids, distances, strict=True)
            ]
            readings.append(Reading(name, classname, nearest))
    return readings


def report(artifact: Artifact, readings: list[Reading], top: int) -> dict[str, Any]:
    """The readings with the artifact's provenance, as a JSON-able dict."""
    provenance = artifact.provenance
    return {
        "run_id": provenance.run_id,
        "method": provenance.method,
        "protocol": provenance.protocol,
        "dataset": provenance.dataset,
        "shots": provenance.shots,
        "seed": provenance.seed,
        "backbone": provenance.backbone,
        "pretrained": provenance.pretrained,
        "lead": artifact.state.texts.get("lead", ""),
        "top": top,
        "contexts": [
            {
                "tensor": r.tensor,
                "class": r.classname,
                "vectors": [
                    {"position": m + 1, "nearest": [asdict(n) for n in row]}
                    for m, row in enumerate(r.nearest)
                ],
            }
            for r in readings
        ],
        "not_read": sorted(set(artifact.state.tensors) - set(artifact.state.contexts)),
    }


def render(data: dict[str, Any]) -> str:
    """A :func:`report` as text: a line per context vector, its nearest words and distances."""
    lines = [
        f"run {data['run_id']} · {data['method']} · {data['protocol']} · {data['dataset']} · "
        f"{data['shots']} shots · seed {data['seed']} · {data['backbone']} ({data['pretrained']})"
    ]
    if data["lead"]:
        lines.append(f"prompt lead: {data['lead']!r} (its first tokens are the learned context)")
    if not data["contexts"]:
        lines.append("no context vectors in the token-embedding space to read")
    for context in data["contexts"]:
        of_class = f" of class {context['class']!r}" if context["class"] is not None else ""
        lines.append(
            f"{context['tensor']}{of_class}: the {data['top']} nearest tokens of each vector "
            "(Euclidean distance in the token-embedding space)"
        )
        for vector in context["vectors"]:
            words = ", ".join(f"{n['word']} ({n['distance']:.4f})" for n in vector["nearest"])
            lines.append(f"  {vector['position']}: {words}")
    if data["not_read"]:
        also = "; the context is read without them" if data["contexts"] else ""
        lines.append(
            f"not read (not in the token-embedding space): {', '.join(data['not_read'])}{also}"
        )
    return "\n".join(lines)
