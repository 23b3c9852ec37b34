"""The doctor on the CPU: its numerics checks pass on the real methods and catch broken ones,
its sections run end to end at small sizes, and its targets judge what a GPU measures.

No assertion here is about speed: on the CPU the speed and memory figures are INFO.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from benchmark.cli import main
from benchmark.hookspecs import hookimpl
from benchmark.perf import doctor, numerics
from benchmark.perf.synthetic import SyntheticDataset, SyntheticDatasets, write_world
from benchmark.registry import MethodSpec, build_registry
from tests.conftest import TINY_MODEL, CoopUnderAnotherName, register_tiny_model, toy_request

SMALL = dataclasses.replace(
    doctor.QUICK,
    backbone=TINY_MODEL,
    source_classes=6,
    target_classes=4,
    shift_classes=3,
    bench_classes=(3,),
    images=4,
    numerics_classes=5,
    memory_classes=20,
    memory_shots=4,  # CoOp: 80 samples, batch 32, two steps
)


def _quiet(message: str) -> None:
    pass


class _Wrapped(CoopUnderAnotherName):
    """CoOp under another name, with ``train`` replaced by ``train(coop, runs, config,
    engine)``: a method broken on purpose."""

    def __init__(self, name: str, train) -> None:
        super().__init__(name)
        self._train = train

    def train(self, runs, config, engine):
        return self._train(self._coop, runs, config, engine)


def _lossy(coop, runs, config, engine):
    """Loses every update under bf16, as bf16 master weights would."""
    if engine.backbone.autocast_dtype == torch.bfloat16:
        config = dataclasses.replace(config, epochs=0)
    return coop.train(runs, config, engine)


def _leaky(coop, runs, config, engine):
    """Trains the runs together but hands every run the first run's classifier."""
    trained = coop.train(runs, config, engine)
    return [trained[0]] * len(trained)


_CALLS = []


def _drifting(coop, runs, config, engine):
    """Reports how many trainings this process has done: a result that depends on where
    the process was stopped."""
    _CALLS.append(1)
    trained = coop.train(runs, dataclasses.replace(config, epochs=1), engine)
    for classifier in trained:
        classifier.diagnostics["calls"] = float(len(_CALLS))
    return trained


class _BrokenMethods:
    @hookimpl
    def register_methods(self, register) -> None:
        for name, train in (("lossy", _lossy), ("leaky", _leaky), ("drifting", _drifting)):
            register(MethodSpec(name, "broken on purpose", _Wrapped(name, train)))


@pytest.fixture
def registry(toy_plugin):
    return build_registry(autoload=False, extra_plugins=[toy_plugin, _BrokenMethods()])


# -- numerics ----------------------------------------------------------------------------------


def test_bf16_autocast_is_a_backbone_setting_on_the_cpu(tiny_engine) -> None:
    """``autocast_dtype`` puts the CPU's encoders under bf16; features still leave in fp32."""
    tower, texts = tiny_engine.tower, ["a photo of a red square.", "a drawing of a ring."]
    assert tiny_engine.backbone.autocast_dtype is None  # the CPU's default: fp32
    fp32 = tower.encode_texts(texts)
    with numerics.autocast_dtype(tiny_engine.backbone, torch.bfloat16):
        bf16 = tower.encode_texts(texts)
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)
    torch.testing.assert_close(bf16, fp32, rtol=0.1, atol=0.1)
    assert tiny_engine.backbone.autocast_dtype is None  # restored


def test_bf16_training_stays_within_tolerance_and_a_lost_update_does_not(
    tiny_engine, registry, tmp_path
) -> None:
    names = ["coop", "kgcoop", "cocoop", "lossy"]
    result = numerics.precision_deviations(tiny_engine, registry, names, 5, tmp_path, _quiet)
    tolerance = numerics.TOLERANCES["bf16_vs_fp32"]
    for name in ("coop", "kgcoop", "cocoop"):
        assert 0 < result[name]["deviation"] <= tolerance, (name, result[name])
        assert result[name]["scores_dtype"] == "float32" and result[name]["finite"]
    assert result["lossy"]["deviation"] == pytest.approx(1.0)  # bf16 learned nothing
    assert result["lossy"]["deviation"] > tolerance


def test_batched_seeds_equal_separate_runs_and_a_leak_is_caught(
    tiny_engine, registry, tmp_path
) -> None:
    names = ["zeroshot", "linear_probe", "cocoop", "gcscoop", "leaky"]
    result = numerics.seed_deviations(tiny_engine, registry, names, 5, None, tmp_path, _quiet)
    for name in names[:-1]:
        assert result[name] <= numerics.TOLERANCES["seeds_fp32"], (name, result[name])
    assert result["leaky"] > 0.5  # runs 2 and 3 got run 1's model


def test_a_resumed_matrix_equals_an_uninterrupted_one(registry, tiny_backbone, tmp_path) -> None:
    request = toy_request(tiny_backbone, tmp_path, protocols=["few_shot", "base_to_new"])
    result = numerics.resume_equality(registry, request, True, _quiet)
    assert result["groups"] == 4 and result["done_before"] == 2 * 2  # 2 groups of 2 seeds
    assert result["skipped"] == result["done_before"] and result["rewritten"] == 0
    assert result["rows"] == result["resumed_rows"] > 0
    assert result["missing"] == result["extra"] == result["differing"] == result["failed"] == 0
    assert result["accuracy_diff"] == result["relative_diff"] == 0


def test_the_resume_check_sees_a_result_that_depends_on_the_interruption(
    registry, tiny_backbone, tmp_path
) -> None:
    request = toy_request(tiny_backbone, tmp_path, methods=["drifting"], shots=[1, 2])
    result = numerics.resume_equality(registry, request, True, _quiet)
    assert result["missing"] == result["extra"] == 0
    assert result["differing"] > 0 and result["relative_diff"] > 0


def test_resumed_values_may_differ_on_cuda_by_one_test_image_at_most() -> None:
    def row(metric, value, n_eval):
        return {"metric": metric, "value": value, "n_eval": n_eval}

    assert numerics._allowed(row("accuracy", 50.0, 200), exact=False) == 0.5  # one image
    assert numerics._allowed(row("accuracy", 50.0, 0), exact=False) == 1.0  # derived (H)
    assert numerics._allowed(row("loss", -2.0, 10), exact=False) == pytest.approx(2e-4)
    assert numerics._allowed(row("accuracy", 50.0, 200), exact=True) == 0.0  # the CPU


def test_short_overrides_are_set_only_where_the_config_has_the_field(registry) -> None:
    coop = registry.methods.get("coop").load()
    probe = registry.methods.get("linear_probe").load()
    assert numerics.short_overrides(coop, 3) == {"epochs": "3"}
    assert numerics.short_overrides(probe) == {"max_iter": "20", "C": "1.0"}
    assert numerics.short_overrides(registry.methods.get("zeroshot").load()) == {}


# -- the sections, end to end at small sizes ---------------------------------------------------


def test_synthetic_world_is_read_like_real_data(tmp_path) -> None:
    world = (
        SyntheticDataset("s_src", "source", 5, (2, 1, 1)),
        SyntheticDataset("s_tgt", "target", 3, (1, 1, 2), first_class=5),
        SyntheticDataset("s_shift", "shift", 2, (0, 0, 1), source="s_src"),
    )
    write_world(tmp_path, world, 24)
    registry = build_registry(autoload=False, extra_plugins=[SyntheticDatasets(tmp_path, world)])
    from benchmark.datasets.spec import DataContext

    splits = {
        d.name: registry.datasets.get(d.name).load(DataContext(None, tmp_path)) for d in world
    }
    assert [len(splits["s_src"].train), len(splits["s_tgt"].test)] == [10, 6]
    assert splits["s_shift"].classnames == splits["s_src"].classnames[:2]  # a subset
    assert not set(splits["s_tgt"].classnames) & set(splits["s_src"].classnames)
    assert registry.datasets.get("s_shift").source == "s_src"


def test_the_doctors_resume_check_passes_with_one_draw_of_random_weights(tmp_path) -> None:
    """Every runner of the check loads the weights drawn once: a fresh random draw per model
    would encode and score with different weights (the cache keys random weights by name)."""
    register_tiny_model()
    run = doctor.Doctor(SMALL, "cpu", tmp_path, 0, False, _quiet)
    resume = run._resume()
    assert resume["rows"] > 0 and resume["differing"] == 0 and resume["rewritten"] == 0
    assert [c.status for c in run.checks] == [doctor.PASS]


def test_run_section_completes_every_method_and_protocol() -> None:
    register_tiny_model()
    report = doctor.run_doctor(SMALL, "cpu", ["run"], autoload=False, progress=_quiet)
    run = report["run"]
    methods = list(build_registry(autoload=False).methods)
    assert run["methods"] == methods and len(run["protocols"]) == 4
    # few-shot and base-to-new on source and target, cross-dataset and DG on the source
    assert run["planned"] == run["succeeded"] == len(methods) * 6 * 3
    assert not run["failed"] and run["nonfinite"] == 0
    assert [c["status"] for c in report["checks"]] == [doctor.PASS]
    assert not doctor.failed(report)


def test_memory_section_stops_each_training_after_its_steps() -> None:
    register_tiny_model()
    report = doctor.run_doctor(SMALL, "cpu", ["memory"], autoload=False, progress=_quiet)
    memory = report["memory"]
    assert [m["method"] for m in memory] == ["coop", "cocoop"]
    assert [m["batch"] for m in memory] == [32, 1]  # the reference presets'
    assert all(m["steps"] == SMALL.memory_steps for m in memory)
    assert all(m["peak_reserved_gb"] is None for m in memory)  # no GPU memory on the CPU
    assert [c["status"] for c in report["checks"]] == [doctor.INFO] * 2


def test_speed_section_reads_back_through_doctor_and_bench(tmp_path, capsys) -> None:
    register_tiny_model()
    report = doctor.run_doctor(SMALL, "cpu", ["speed"], autoload=False, progress=_quiet)
    bench = report["bench"]
    assert {r["method"] for r in bench["rows"]} == {
        "coop",
        "cocoop",
        "prograd",
        "kgcoop",
        "scoop",
        "gcscoop",
    }
    assert bench["decode_images_per_s"] > 0 and bench["encode_images_per_s"] > 0
    assert {c["status"] for c in report["checks"]} == {doctor.INFO}  # CPU: not judged
    path = tmp_path / "doctor.json"
    path.write_text(json.dumps(report))
    assert main(["doctor", "--from-json", str(path)]) == 0
    assert "| speed" in capsys.readouterr().out
    assert main(["bench", "--from-json", str(path)]) == 0  # the bench part of it
    assert "| gcscoop" in capsys.readouterr().out


# -- judging what a GPU measures -----------------------------------------------------------------


def _judged(bench: dict, peaks: list[dict]) -> dict[str, str]:
    run = doctor.Doctor(SMALL, "cuda", None, 0, False, _quiet)
    run.judge_speed(bench)
    run.judge_memory(peaks)
    return {c.name: c.status for c in run.checks}


def test_targets_judge_cuda_figures() -> None:
    def row(method, k, speedup, share=None):
        return {
            "method": method,
            "classes": k,
            "speedup": speedup,
            "reference_ms": 10.0,
            "ours_ms": 10.0 / speedup,
            "text_tflops": 100.0,
            "text_peak_share": share,
        }

    bench = {
        "rows": [
            row("coop", 10, 5.2),
            row("coop", 100, 4.9),
            row("coop", 1000, 2.6, share=0.38),
            row("cocoop", 1000, 2.4),
        ],
        "matmul_bf16_tflops": 260.0,
        "extraction_images_per_s": 900.0,
        "decode_images_per_s": 1000.0,
        "encode_images_per_s": 3000.0,
        "extraction_workers": 8,
        "jpeg_kib": 100.0,
    }
    peaks = [
        {"method": "coop", "classes": 1000, "shots": 16, "batch": 32, "steps": 8,
         "peak_allocated_gb": 3.0, "peak_reserved_gb": 3.5},
        {"method": "cocoop", "classes": 1000, "shots": 16, "batch": 1, "steps": 8,
         "peak_allocated_gb": 23.0, "peak_reserved_gb": 24.5},
    ]  # fmt: skip
    status = _judged(bench, peaks)
    assert status["step speed-up, coop, K = 10"] == doctor.PASS
    assert status["step speed-up, coop, K = 100"] == doctor.FAIL  # 4.9 < 5
    assert status["step speed-up, coop, K = 1000"] == doctor.PASS  # 2.6 >= 2.5
    assert status["step speed-up, cocoop, K = 1000"] == doctor.FAIL
    assert status["text encoder, coop, K = 1000"] == doctor.FAIL  # 38% < 40%
    assert status["image-feature extraction"] == doctor.FAIL  # decoding bounds it
    memory = [s for name, s in status.items() if name.startswith("training peak memory")]
    assert memory == [doctor.PASS, doctor.FAIL]  # 24.5 GB is not under 24


def test_a_failed_check_sets_the_exit_code(tmp_path, capsys) -> None:
    report = {
        "kind": "doctor",
        "device": "test",
        "backbone": "ViT-B-16",
        "weights": "random (seed 0)",
        "torch": torch.__version__,
        "sections": ["run"],
        "seconds": {"run": 1.0},
        "checks": [
            dataclasses.asdict(doctor.Check("run", "matrix", doctor.FAIL, "1 failed", "none"))
        ],
    }
    path = tmp_path / "failed.json"
    path.write_text(json.dumps(report))
    assert main(["doctor", "--from-json", str(path)]) == 1
    assert "| FAIL" in capsys.readouterr().out


def test_bad_doctor_options_get_one_line(tmp_path, capsys) -> None:
    assert main(["doctor", "--device", "cpu"]) == 2  # full sizes on a CPU: --quick
    assert "--quick" in capsys.readouterr().err
    assert main(["doctor", "--quick", "--device", "cpu", "--only", "speed,nap"]) == 2
    assert "valid: run, numerics, speed, memory" in capsys.readouterr().err
    assert main(["doctor", "--quick", "--device", "cpu", "--backbone", "ViT-Nope"]) == 2
    assert "unknown backbone 'ViT-Nope'" in capsys.readouterr().err
    bench_report = tmp_path / "bench.json"
    bench_report.write_text(json.dumps({"rows": []}))
    assert main(["doctor", "--from-json", str(bench_report)]) == 2
    assert main(["doctor", "--from-json", str(tmp_path / "missing.json")]) == 3
    capsys.readouterr()
    cut = tmp_path / "cut.json"
    cut.write_text(json.dumps({"kind": "doctor"}))
    assert main(["doctor", "--from-json", str(cut)]) == 3
    assert "not a complete doctor report (no 'checks')" in capsys.readouterr().err
