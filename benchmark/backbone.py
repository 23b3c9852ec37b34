"""The frozen CLIP backbone: any open_clip model by name and pretrained tag, or a local
checkpoint file.

Both encoders are frozen (``requires_grad`` off, eval mode). On CUDA the encoders run
under bf16 autocast (fp16 where bf16 is not supported) with fp32 weights; on the CPU they
run in fp32 (``Backbone.autocast_dtype`` sets another precision). Features leave this module
in fp32.
"""

from __future__ import annotations

import hashlib
import logging
import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG

import torch
from torch import nn

from benchmark.errors import EXIT_ENVIRONMENT, UserError, first_line

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def check_weights_choice(pretrained: str | None, checkpoint: object) -> None:
    """Refuse ``--pretrained`` and ``--checkpoint`` given together: they name two weights."""
    if pretrained and checkpoint:
        raise UserError("give either --pretrained or --checkpoint, not both")


@dataclass(frozen=True)
class BackboneSpec:
    """Which backbone to load: an open_clip model name plus a pretrained tag or a file."""

    name: str
    pretrained: str | None = None
    checkpoint: Path | None = None

    @property
    def weights(self) -> str:
        """The ``pretrained`` column of result rows: the tag, or ``file:<name>``."""
        if self.checkpoint is not None:
            return f"file:{Path(self.checkpoint).name}"
        return self.pretrained or "random-init"

    @property
    def fingerprint(self) -> str:
        """Identifies the weights by content: the model name with the pretrained tag, or with
        the sha256 of the checkpoint file (:func:`file_digest`). Run identities and the
        feature cache key on it, so other weights behind the same file name never share
        results or features."""
        if self.checkpoint is not None:
            identity = f"{self.name}|file|{file_digest(Path(self.checkpoint))}"
        else:
            identity = f"{self.name}|{self.pretrained or 'random-init'}"
        return hashlib.sha256(identity.encode()).hexdigest()[:16]


#: sha256 of weights files by (real path, size, modification time in ns).
_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """The sha256 of a weights file, computed once per file in a process: cached by its real
    path, size and modification time, so a replaced file is read again."""
    try:
        stat = os.stat(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"checkpoint file not found: {path}", EXIT_ENVIRONMENT) from exc
    if not S_ISREG(stat.st_mode):
        raise UserError(
            f"checkpoint {path} is not a regular file (a folder, named pipe or device)",
            EXIT_ENVIRONMENT,
        )
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except OSError as exc:
            raise UserError(
                f"cannot read checkpoint {path} ({exc.strerror})", EXIT_ENVIRONMENT
            ) from exc
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def _text_tower(model: nn.Module) -> nn.Module:
    """The module holding the CLIP text transformer's parts (CLIP or CustomTextCLIP)."""
    tower = getattr(model, "text", model)
    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final")
    if not all(hasattr(tower, part) for part in needed):
        raise UserError(
            f"{type(model).__name__} has no CLIP-style text transformer; prompt learning needs "
            "an open_clip model with token_embedding, positional_embedding, transformer, ln_final"
        )
    return tower


class Backbone:
    """A frozen open_clip model on one device.

    ``fingerprint`` identifies the weights (:attr:`BackboneSpec.fingerprint`): the feature
    cache keys on it, so different weights never share features.
    """

    def __init__(self, spec: BackboneSpec, device: str = "cpu") -> None:
        import open_clip

        self.spec = spec
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA GPU is available", 4)
        self.model = self._create(open_clip, spec)
        self.model.to(self.device).eval().requires_grad_(False)
        self.tokenizer = open_clip.get_tokenizer(spec.name)
        self.text = _text_tower(self.model)
        self.embed_dim = int(self.text.text_projection.shape[1])
        self.image_size = self._image_size()
        #: The autocast precision of the encoders; None: fp32.
        self.autocast_dtype: torch.dtype | None = None
        if self.device.type == "cuda":
            bf16 = torch.cuda.is_bf16_supported()
            self.autocast_dtype = torch.bfloat16 if bf16 else torch.float16
        self.fingerprint = spec.fingerprint

    @staticmethod
    def _create(open_clip, spec: BackboneSpec) -> nn.Module:
        from benchmark.miniworld.model import register_model_config

        register_model_config()  # the mini world's own tiny CLIP is an open_clip config
        if spec.name not in open_clip.list_models():
            from benchmark.errors import unknown_name

            raise unknown_name("backbone", spec.name, open_clip.list_models())
        if spec.checkpoint is not None:
            path = Path(spec.checkpoint)
            file_digest(path)  # refuses a missing file, a folder or a named pipe
            model = _architecture(open_clip, spec.name)
            _load_checkpoint(model, path)
            return model
        if spec.pretrained and (spec.name, spec.pretrained) not in open_clip.list_pretrained():
            tags = [t for m, t in open_clip.list_pretrained() if m == spec.name]
            raise UserError(
                f"no pretrained weights {spec.pretrained!r} for {spec.name}; "
                f"valid tags: {', '.join(tags) or 'none (use --checkpoint FILE)'}"
            )
        if not spec.pretrained:
            return _architecture(open_clip, spec.name)
        # OpenAI's CLIPs were trained with QuickGELU, which open_clip's plain configs (RN50,
        # ViT-B-16) do not use: it builds them with GELU and only warns.
        quick_gelu = bool(
            open_clip.get_pretrained_cfg(spec.name, spec.pretrained).get("quick_gelu")
        )
        # A failed download is logged at length by the hub client and by open_clip; the
        # error below says it in one line.
        logging.disable(logging.ERROR)
        try:
            return open_clip.create_model(
                spec.name, pretrained=spec.pretrained, force_quick_gelu=quick_gelu
            )
        except Exception as exc:  # the hub download failed: no network, or no such file
            reason = first_line(exc)
            reason = reason if len(reason) <= 200 else reason[:199] + "…"
            raise UserError(
                f"could not get the {spec.name}/{spec.pretrained} weights "
                f"({type(exc).__name__}: {reason}); without network "
                "access, download them elsewhere and pass the file with --checkpoint FILE",
                EXIT_ENVIRONMENT,
            ) from exc
        finally:
            logging.disable(logging.NOTSET)

    def _image_size(self) -> int:
        size = getattr(self.model.visual, "image_size", 224)
        return int(size[0] if isinstance(size, tuple | list) else size)

    def autocast(self) -> AbstractContextManager:
        """Autocast to :attr:`autocast_dtype` (bf16 or fp16 on CUDA); nothing when it is None
        (the CPU's default: fp32)."""
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp())

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Unnormalised image features (fp32) of a batch of normalised pixel tensors."""
        with self.autocast():
            return self.model.encode_image(pixels.to(self.device)).float()

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(texts).to(self.device)


def _no_weights_warning(record: logging.LogRecord) -> bool:
    return "No pretrained weights loaded" not in record.getMessage()


#: The seed of random-initialised weights: a model without weights is drawn the same on every
#: load, so its fingerprint ("<name>|random-init") names one set of weights and the features
#: cached for it stay valid.
RANDOM_INIT_SEED = 0


def _architecture(open_clip, name: str) -> nn.Module:
    """The randomly initialised model, the same draw on every call (the global random state is
    left as it was); open_clip's warning that no weights were loaded is dropped (the caller
    loads a checkpoint, or asked for random weights)."""
    root = logging.getLogger()
    root.addFilter(_no_weights_warning)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            return open_clip.create_model(name, pretrained=None, load_weights=False)
    finally:
        root.removeFilter(_no_weights_warning)


def _load_checkpoint(model: nn.Module, path: Path) -> None:
    """Load weights from safetensors or a torch file (``weights_only``: nothing executes)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(
            f"{path} is not a readable weights file ({first_line(exc)})", EXIT_ENVIRONMENT
        ) from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise UserError(f"{path} holds no state dict of weights", EXIT_ENVIRONMENT)
    for key, value in state.items():
        if not isinstance(key, str):
            found = f"key {key!r} ({type(key).__name__}) is not a parameter name"
        elif not isinstance(value, torch.Tensor):
            found = f"{key!r} holds a {type(value).__name__}, not a tensor"
        else:
            continue
        raise UserError(
            f"{path}: {found}; a checkpoint maps parameter names to tensors", EXIT_ENVIRONMENT
        )
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        detail = (
            f"{len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} unexpected "
            f"(e.g. {unexpected[:2]}), {len(mismatched)} of other shape (e.g. {mismatched[:2]})"
        )
        raise UserError(
            f"{path} is not a checkpoint of this CLIP architecture: {detail}", EXIT_ENVIRONMENT
        )
    non_finite = [
        k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]
    if non_finite:
        raise UserError(
            f"{path}: {len(non_finite)} weight tensor(s) hold NaN or infinite values (e.g. "
            f"{non_finite[0]}); the checkpoint is damaged",
            EXIT_ENVIRONMENT,
        )
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
