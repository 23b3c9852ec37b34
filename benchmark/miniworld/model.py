"""The tiny CLIP of the offline mini world: an open_clip model config of our own.

``vlprompt-tiny``: ViT image tower (32x32 input, patch 4, width 96, 4 layers, 3 heads) and
a causal text transformer (context 77, CLIP's 49408-token BPE vocabulary, width 96, 4 layers,
4 heads), joint embedding 128. The weights in ``tinyclip.safetensors`` (stored as fp16) come
from :mod:`benchmark.miniworld.pretrain`; see that module for how and how long.

Load it with plain open_clip once the config is registered::

    register_model_config()
    model = open_clip.create_model(MODEL_NAME, pretrained=str(CHECKPOINT))
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL_NAME = "vlprompt-tiny"
CONFIG = HERE / f"{MODEL_NAME}.json"
CHECKPOINT = HERE / "tinyclip.safetensors"


def register_model_config() -> str:
    """Make ``MODEL_NAME`` known to open_clip (idempotent); returns the name."""
    import open_clip

    if MODEL_NAME not in open_clip.list_models():
        open_clip.add_model_config(CONFIG)
    return MODEL_NAME


def create_model(pretrained: bool = True):
    """The tiny CLIP, with the shipped weights unless ``pretrained`` is false."""
    import open_clip

    register_model_config()
    if pretrained:
        return open_clip.create_model(MODEL_NAME, pretrained=str(CHECKPOINT))
    return open_clip.create_model(MODEL_NAME, pretrained=None)
