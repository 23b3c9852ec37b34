"""The bench command and the matrix estimate: every row is reported, the text encoder's FLOPs
are counted from what runs, and the estimate follows the presets and the sampler.

No assertion here is about speed: the bench's figures are measurements, not test results.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from benchmark.cli import main
from benchmark.hookspecs import hookimpl
from benchmark.perf.bench import (
    DEFAULT_METHODS,
    N_CTX,
    bench_config,
    reference_designs,
    run_bench,
    step_flops,
)
from benchmark.perf.estimate import SEEDS, curve, estimate, training
from benchmark.perf.reference_step import (
    ReferenceDesign,
    design_of,
    reference_step,
)
from benchmark.perf.synthetic import classnames, synthetic_runs
from benchmark.registry import MethodSpec, build_registry
from tests.conftest import CoopUnderAnotherName

ROW_FIELDS = ("reference_ms", "ours_ms", "speedup", "text_gflop", "text_tflops")


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory) -> dict:
    """One ``bench --quick --estimate`` run (two small class counts, to stay fast)."""
    path = tmp_path_factory.mktemp("bench") / "report.json"
    args = ["bench", "--quick", "--classes", "3,6", "--seeds-batched", "2", "--estimate"]
    threads = torch.get_num_threads()
    try:
        assert main([*args, "--threads", "1", "--json", str(path)]) == 0
    finally:
        torch.set_num_threads(threads)
    return json.loads(path.read_text())


def test_quick_bench_reports_every_method_and_class_count(quick_report) -> None:
    rows = quick_report["rows"]
    assert {(r["method"], r["classes"]) for r in rows} == {
        (m, k) for m in DEFAULT_METHODS for k in (3, 6)
    }
    for r in rows:
        assert all(math.isfinite(r[field]) for field in ROW_FIELDS), r
        assert r["reference_ms"] > 0
        assert r["text_gflop"] > 0  # the counter saw the text transformer run
        assert r["batch"] == (1 if r["method"] == "cocoop" else 32)
        assert r["ours_peak_gib"] is None  # CPU: no GPU memory to report
    assert quick_report["matmul_bf16_tflops"] is None
    assert set(quick_report["reference_image_ms"]) == {"1", "32", "128"}  # the presets' batches
    assert quick_report["extraction_images_per_s"] > 0
    assert quick_report["decode_images_per_s"] > 0 and quick_report["encode_images_per_s"] > 0
    assert quick_report["seeds_batched"] == 2


def test_quick_estimate_covers_both_matrices_and_every_method(quick_report) -> None:
    result = quick_report["estimate"]
    matrices = {m["protocol"]: m for m in result["matrices"]}
    assert set(matrices) == {"few_shot", "base_to_new"}
    assert matrices["few_shot"]["runs"] == 11 * 5 * SEEDS * 8
    assert matrices["base_to_new"]["runs"] == 11 * 1 * SEEDS * 8
    for matrix in matrices.values():
        assert len(matrix["methods"]) == 8  # SCoOp timed as GCSCoOp
        assert matrix["methods"]["zeroshot"]["ours_h"] == 0
        assert matrix["extraction_h"] > 0
        total = sum(m["ours_h"] for m in matrix["methods"].values()) + matrix["extraction_h"]
        assert matrix["ours_h"] == pytest.approx(total)
    assert result["assumptions"]


def test_from_json_reprints_a_saved_report(quick_report, tmp_path, capsys) -> None:
    path = tmp_path / "saved.json"
    path.write_text(json.dumps(quick_report))
    assert main(["bench", "--from-json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "| gcscoop" in out and "feature extraction" in out


@pytest.mark.parametrize(
    ("command", "drop", "missing"),
    [
        (["bench", "--from-json"], "rows", "no 'rows'"),
        (["bench", "--estimate", "--from-json"], "reference_image_ms", "no 'reference_image_ms'"),
        (["recipes", "--bench"], "rows", "no 'rows'"),
    ],
)
def test_an_incomplete_saved_report_is_one_line(
    quick_report, tmp_path, capsys, command, drop, missing
) -> None:
    path = tmp_path / "cut.json"
    report = {k: v for k, v in quick_report.items() if k != drop}
    report["backbone"] = "ViT-B-16"  # the recipes' backbone: `recipes` uses the report
    path.write_text(json.dumps(report))
    assert main([*command, str(path)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{path}" in err and f"not a complete bench report ({missing})" in err


def test_bad_bench_options_get_one_line(tmp_path, capsys) -> None:
    assert main(["--no-plugin-autoload", "bench", "--methods", "zeroshot"]) == 2
    assert "valid: cocoop, coop, gcscoop, kgcoop, prograd, scoop" in capsys.readouterr().err
    assert main(["bench", "--from-json", str(tmp_path / "missing.json")]) == 3
    assert main(["bench", "--repeat", "0"]) == 2
    assert main(["bench", "--workers", "-1"]) == 2


def test_bench_config_uses_batch_32_and_16_context_tokens() -> None:
    registry = build_registry(autoload=False)
    for name in DEFAULT_METHODS:
        config = bench_config(registry.methods.get(name).load(), "ViT-B-16")
        assert config.n_ctx == N_CTX
        assert config.batch_size == (1 if name == "cocoop" else 32)
    prograd = bench_config(registry.methods.get("prograd").load(), "ViT-B-16")
    assert prograd.ctx_init  # its preset already has 16 tokens: kept as is


def test_step_flops_count_forward_and_backward_of_the_prompts(tiny_engine, tmp_path) -> None:
    """One CoOp step of S runs: a forward and an input-gradient backward of the text encoder
    over S shared prefixes ([SOS] + M context) and S x K class suffixes: 2 x 2 x tokens x
    layers x (4w^2 + 2w m) in the matmuls of the projections and MLP, plus the attention's if
    the counter sees it (not on every device) and the logits of the batch."""
    registry = build_registry(autoload=False)
    coop = registry.methods.get("coop").load()
    names = classnames(7)
    config = dataclasses.replace(bench_config(coop, "tiny"), batch_size=4)
    runs = synthetic_runs(tiny_engine, names, 2, 8, tmp_path / "runs", 2)
    transformer = tiny_engine.tower.tower.transformer

    def train(epochs: int) -> None:
        coop.train(runs, dataclasses.replace(config, epochs=epochs), tiny_engine)

    flops = step_flops(train, steps=2)
    width = tiny_engine.tower.tower.token_embedding.weight.shape[1]
    mlp = transformer.resblocks[0].mlp.c_fc.out_features
    layers = len(transformer.resblocks)
    length = tiny_engine.tower.tokens([" ".join(["X"] * N_CTX) + f" {n}." for n in names])[0]
    prefix, suffix = 1 + N_CTX, length.shape[1] - 1 - N_CTX
    tokens = 2 * (prefix + len(names) * suffix)
    matmuls = 2 * 2 * tokens * layers * (4 * width**2 + 2 * width * mlp)
    attention = tokens * layers * 12 * length.shape[1] * width  # QK^T, AV and their grads
    logits = 2 * 2 * 2 * 4 * len(names) * tiny_engine.backbone.embed_dim
    # the suffixes enter the first layer as constants: their q, k, v projections need no
    # input gradient there
    constant = 2 * (2 * len(names) * suffix) * width * 3 * width
    assert matmuls - constant <= flops <= matmuls + attention + logits


def designs() -> dict[str, ReferenceDesign]:
    """The reference designs the registered methods declare."""
    registry = build_registry(autoload=False)
    declared = {
        name: design_of(name, registry.methods.get(name).load()) for name in registry.methods
    }
    return {name: design for name, design in declared.items() if design is not None}


@pytest.mark.parametrize("method", sorted(designs()))
def test_reference_steps_train_the_context(method, tiny_engine) -> None:
    backbone = tiny_engine.backbone
    design = designs()[method]
    step, ctx = reference_step(backbone, backbone.model, design, classnames(5), 4, N_CTX)
    before = ctx.detach().clone()
    step()
    assert not torch.equal(before, ctx.detach())  # the step moved the learned context
    assert ctx.shape == (N_CTX, backbone.text.token_embedding.weight.shape[1])


def test_curve_interpolates_and_extends() -> None:
    at = curve({10: 2.0, 100: 11.0, 1000: 101.0})
    assert at(10) == 2.0 and at(55) == pytest.approx(6.5) and at(550) == pytest.approx(56.0)
    assert at(5) == 2.0  # constant below the smallest measured count
    assert at(2000) == pytest.approx(201.0)  # the last segment extended


@pytest.mark.parametrize(
    ("method", "protocol", "dataset", "shots", "expected"),
    [
        ("coop", "few_shot", "eurosat", 1, (10, 50, 1)),  # 10 images < batch 32: one step
        ("coop", "few_shot", "imagenet", 16, (1000, 50, 500)),  # ImageNet: 50 epochs
        ("coop", "few_shot", "caltech101", 8, (100, 200, 25)),  # 800 // 32
        ("prograd", "few_shot", "dtd", 4, (47, 100, 5)),  # 188 // 32, last batch dropped
        ("kgcoop", "few_shot", "oxford_pets", 16, (37, 100, 4)),  # 592 // 128
        ("gcscoop", "base_to_new", "sun397", 16, (199, 200, 24)),  # 199 base classes
        ("cocoop", "base_to_new", "dtd", 16, (24, 10, 384)),  # batch 1
    ],
)
def test_training_steps_follow_presets_and_sampler(method, protocol, dataset, shots, expected):
    loaded = build_registry(autoload=False).methods.get(method).load()
    k, config, steps = training(loaded, protocol, dataset, shots, "ViT-B-16")
    assert (k, config.epochs, steps) == expected


def _report(ours_ms: float, reference_ms: float, image_ms: float) -> dict:
    rows = [
        {
            "method": m,
            "classes": k,
            "batch": 1 if m == "cocoop" else 32,
            "ours_ms": ours_ms,
            "reference_ms": reference_ms,
            "image_passes": designs()[m].image_passes,
        }
        for m in DEFAULT_METHODS
        for k in (10, 100)
    ]
    return {
        "device": "test",
        "backbone": "ViT-B-16",
        "rows": rows,
        "reference_image_ms": {"1": image_ms, "32": image_ms, "128": image_ms},
        "extraction_images_per_s": 1e30,
    }


def test_estimate_scales_with_step_time_and_counts_reference_evaluation() -> None:
    registry = build_registry(autoload=False)
    one = estimate(_report(1.0, 1.0, 0.0), registry)
    two = estimate(_report(2.0, 2.0, 0.0), registry)
    for a, b in zip(one["matrices"], two["matrices"], strict=True):
        for name in ("coop", "kgcoop", "gcscoop", "scoop"):
            ours, reference = a["methods"][name]["ours_h"], a["methods"][name]["reference_h"]
            assert reference == pytest.approx(ours)  # same step time, free image passes
            assert b["methods"][name]["ours_h"] == pytest.approx(2 * ours)
    evaluated = estimate(_report(1.0, 1.0, 128.0), registry)  # 1 ms per image at batch 128
    few_shot = next(m for m in evaluated["matrices"] if m["protocol"] == "few_shot")
    base = next(m for m in one["matrices"] if m["protocol"] == "few_shot")
    # zero-shot CLIP in the reference encodes each test split once: 1 ms per test image
    test_images = 2465 + 3669 + 8041 + 2463 + 30300 + 3333 + 19850 + 1692 + 8100 + 3783 + 50000
    assert few_shot["methods"]["zeroshot"]["reference_h"] == pytest.approx(test_images / 3.6e6)
    extra = few_shot["methods"]["coop"]["reference_h"] - base["methods"]["coop"]["reference_h"]
    assert extra == pytest.approx(5 * SEEDS * test_images / 3.6e6)  # every run re-encodes it


def test_estimate_needs_two_class_counts() -> None:
    report = _report(1.0, 1.0, 0.0)
    report["rows"] = [r for r in report["rows"] if r["classes"] == 10]
    from benchmark.errors import UserError

    with pytest.raises(UserError, match="two or more class counts"):
        estimate(report, build_registry(autoload=False))


def test_methods_without_a_reference_design_are_refused() -> None:
    registry = build_registry(autoload=False)
    zeroshot = registry.methods.get("zeroshot").load()
    with pytest.raises(ValueError, match="no reference-design step for zeroshot"):
        reference_designs({"zeroshot": zeroshot})


class _Declared(CoopUnderAnotherName):
    """CoOp's training under another name, declaring a two-pass reference design."""

    reference_design = ReferenceDesign(passes=2)

    def __init__(self) -> None:
        super().__init__("declared")


class _DeclaringPlugin:
    @hookimpl
    def register_methods(self, register) -> None:
        register(MethodSpec("declared", "CoOp declaring its reference design", _Declared()))


def test_a_method_declares_its_reference_design_or_has_none() -> None:
    methods = build_registry(autoload=False).methods
    assert design_of("coop", methods.get("coop").load()) == ReferenceDesign()  # the family's
    assert design_of("zeroshot", methods.get("zeroshot").load()) is None  # trains nothing
    assert design_of("declared", _Declared()) == ReferenceDesign(passes=2)
    wrong = type("Wrong", (), {"reference_design": {"passes": 2}})()
    with pytest.raises(TypeError, match="reference_design must be a"):
        design_of("wrong", wrong)


def test_a_plugin_method_with_a_reference_design_is_benched(tiny_backbone) -> None:
    """The bench reads a third-party method's design from the method: no core change."""
    registry = build_registry(autoload=False, extra_plugins=[_DeclaringPlugin()])
    report = run_bench(
        tiny_backbone, "cpu", ["declared"], [3], 1, 2, 0, 1, lambda m: None, registry
    )
    (row,) = report["rows"]
    assert (row["method"], row["image_passes"]) == ("declared", 2)
    assert row["reference_ms"] > 0 and row["ours_ms"] > 0


def test_reference_design_passes_and_teacher_make_the_image_passes() -> None:
    declared = designs()
    assert declared["prograd"].image_passes == 2  # the student's and the teacher's
    assert declared["gcscoop"].image_passes == 2  # two SAM passes
    assert declared["cocoop"].image_passes == 1
    with pytest.raises(ValueError, match="at least one pass"):
        ReferenceDesign(passes=0)
