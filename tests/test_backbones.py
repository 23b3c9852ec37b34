"""The backbone families of the papers' tables (ResNet CLIPs: RN50, RN101; ViTs: ViT-B/32,
ViT-B/16) through the same feature cache, text encoder and runner: tiny random-initialised
open_clip configs of each family (tests/fixtures), trained and scored on generated data."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from benchmark.runner import Runner
from tests.conftest import FIXTURES, TINY_MODEL, register_tiny_model, toy_request

#: A ModifiedResNet image tower (stem, four residual stages, attention pooling) and a ViT
#: with 32-pixel patches, each with the tiny text tower of vlprompt-test-tiny.
FAMILIES = {
    "resnet": "vlprompt-test-tiny-rn",
    "vit-patch32": "vlprompt-test-tiny-vit32",
}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family_backbone(request, tmp_path_factory):
    import open_clip
    from safetensors.torch import save_file

    from benchmark.backbone import BackboneSpec

    name = FAMILIES[request.param]
    if name not in open_clip.list_models():
        open_clip.add_model_config(FIXTURES / f"{name}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(name, pretrained=None)
    path = tmp_path_factory.mktemp("weights") / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return BackboneSpec(name, None, path)


def test_the_family_is_the_one_named(family_backbone):
    from benchmark.backbone import Backbone

    backbone = Backbone(family_backbone)
    visual = type(backbone.model.visual).__name__
    if family_backbone.name.endswith("-rn"):
        assert visual == "ModifiedResNet" and hasattr(backbone.model.visual, "attnpool")
    else:
        assert visual == "VisionTransformer"
        assert backbone.model.visual.patch_size == (32, 32)
    assert backbone.image_size == 64
    features = backbone.encode_images(torch.zeros(2, 3, 64, 64))
    assert features.shape == (2, backbone.embed_dim) and features.dtype == torch.float32


def test_a_run_trains_and_scores_through_the_runner(family_backbone, toy_registry, tmp_path):
    request = toy_request(
        family_backbone,
        tmp_path,
        seeds=[1],
        overrides={"coop": {"epochs": "2"}},
    )
    summary = Runner(toy_registry, request, progress=lambda m: None).run()
    assert (summary.succeeded, summary.failed) == (2, [])
    table = pd.read_parquet(tmp_path / "results" / "runs")
    assert set(table.method) == {"zeroshot", "coop"}
    assert set(table.backbone) == {family_backbone.name}
    assert (table.metric == "accuracy").all() and table.value.between(0, 100).all()
    assert (table.n_eval == 20).all()  # the toy source's 5 classes x 4 test images
    assert table.set_index("method").train_seconds["coop"] > 0


def test_the_text_path_equals_open_clips_encode_text(family_backbone):
    """Hand-written prompts (cut after EOT) and a learned context equal to the words of a
    phrase (shared prefix) give the features of the family's own ``encode_text``."""
    from benchmark.backbone import Backbone
    from benchmark.prompting.context import initial_context
    from benchmark.prompting.text import PromptEncoder, TextTower

    backbone = Backbone(family_backbone)
    tower = TextTower(backbone)
    names = ("red square", "a very large green circle", "cat")
    texts = [f"a photo of a {n}." for n in names]
    expected = backbone.model.encode_text(backbone.tokenize(texts))
    torch.testing.assert_close(tower.encode_texts(texts), expected, rtol=1e-5, atol=1e-5)
    assert tower.shares_prefixes
    ctx = initial_context(tower, "a photo of a", 0, [1]).ctx  # (1, 4, d)
    features = PromptEncoder(tower, names, n_ctx=4)(ctx[:, None])
    torch.testing.assert_close(features[0], expected, rtol=1e-5, atol=1e-5)


@pytest.fixture
def quick_gelu_tag(tiny_checkpoint):
    """A pretrained tag of the tiny model whose weights, like OpenAI's CLIPs, were trained
    with QuickGELU (open_clip's tag entry, its file local instead of downloaded)."""
    import open_clip
    from open_clip import pretrained

    from tests.conftest import TINY_MODEL, register_tiny_model

    register_tiny_model()
    tag = "quickgelu_test"
    entry = {"file": str(tiny_checkpoint), "quick_gelu": True}
    pretrained._PRETRAINED.setdefault(TINY_MODEL, {})[tag] = entry
    assert (TINY_MODEL, tag) in open_clip.list_pretrained()
    yield TINY_MODEL, tag
    del pretrained._PRETRAINED[TINY_MODEL][tag]


def test_weights_trained_with_quick_gelu_run_with_quick_gelu(quick_gelu_tag, tiny_checkpoint):
    """OpenAI's CLIPs (every recipe's weights) use QuickGELU; open_clip builds a model name's
    config as it is (GELU) and only warns when the tag says otherwise."""
    import open_clip
    from open_clip.transformer import QuickGELU
    from safetensors.torch import load_file

    from benchmark.backbone import Backbone, BackboneSpec

    name, tag = quick_gelu_tag
    backbone = Backbone(BackboneSpec(name, tag))
    activations = {type(m) for m in backbone.model.modules() if "GELU" in type(m).__name__}
    assert activations == {QuickGELU}
    texts = backbone.tokenize(["a photo of a red square."])
    reference = open_clip.create_model(name, pretrained=None, force_quick_gelu=True)
    reference.load_state_dict(load_file(str(tiny_checkpoint)))
    torch.testing.assert_close(
        backbone.model.encode_text(texts), reference.eval().encode_text(texts)
    )


def test_random_weights_are_one_draw_whose_features_the_cache_may_keep():
    """A model without weights is drawn the same on every load (its fingerprint names one
    set of weights), and loading it leaves the global random state alone."""
    from benchmark.backbone import Backbone, BackboneSpec

    register_tiny_model()
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    first, second = (Backbone(BackboneSpec(TINY_MODEL)).model.state_dict() for _ in range(2))
    assert torch.equal(torch.rand(3), expected)
    assert all(torch.equal(first[k], second[k]) for k in first)
