"""Every kind of bad input, provoked for real through the command line: one line on stderr,
no traceback, and the exit code the README documents (2 usage, 3 data, 4 environment)."""

from __future__ import annotations

import json
import os
import pickle
import signal
import struct
import zlib

import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import save_file

from benchmark.cli import main
from benchmark.errors import EXIT_DATA, EXIT_ENVIRONMENT, EXIT_USAGE
from benchmark.miniworld.model import CHECKPOINT, MODEL_NAME
from tests.conftest import write_imagefolder

CLASSES = ("red square", "green circle", "blue triangle")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A small valid ImageFolder dataset."""
    return write_imagefolder(tmp_path_factory.mktemp("data") / "shapes", CLASSES, (1, 0, 1))


def run(tmp_path, *argv, checkpoint=CHECKPOINT, results=None):
    return main(_argv(tmp_path, *argv, checkpoint=checkpoint, results=results))


def _argv(tmp_path, *argv, checkpoint=CHECKPOINT, results=None) -> list[str]:
    return [
        "run",
        *("--methods", "zeroshot", "--protocols", "few_shot", "--shots", "1", "--seeds", "1"),
        *("--backbone", MODEL_NAME, "--checkpoint", str(checkpoint), "--device", "cpu"),
        *("--results", str(results or tmp_path / "results")),
        *("--cache-dir", str(tmp_path / "cache"), "--no-leaderboard"),
        *argv,
    ]


def one_line(capsys, code: int, expected_code: int, *fragments: str) -> str:
    err = capsys.readouterr().err
    # an interrupted progress bar may leave its line unfinished before the error
    lines = [line[line.index("error: ") :] for line in err.splitlines() if "error: " in line]
    assert code == expected_code, err
    assert len(lines) == 1, err
    assert err.rstrip().splitlines()[-1].endswith(lines[0]), err  # the message ends stderr
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# -- names and options -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--methods", "coop:cs"], ["unknown coop variant 'cs'", "Did you mean 'csc'?"]),
        (["--methods", "CoOp"], ["unknown method 'CoOp'", "Did you mean 'coop'?"]),
        (["--methods", "KGCOOP"], ["unknown method 'KGCOOP'", "Did you mean 'kgcoop'?"]),
        (["--backbone", "vlprompt-tiyn"], ["unknown backbone", "Did you mean 'vlprompt-tiny'?"]),
        (["--set", "zeroshot"], ["expected method.field=value"]),
        (["--methods", ","], ["--methods", "expected comma-separated names, got ','"]),
        (["--datasets", ""], ["--datasets", "expected comma-separated names"]),
        (["--set", "zeroshot.ensemble=maybe"], ["--set zeroshot.ensemble", "true or false"]),
        # every numeric field has a valid range, checked before anything runs
        (["--methods", "coop", "--set", "coop.epochs=-3"], ["--set coop", "epochs", "at least 0"]),
        (["--methods", "coop", "--set", "coop.n_ctx=-2"], ["--set coop", "n_ctx must be 0..73"]),
        (["--methods", "coop", "--set", "coop.n_ctx=200"], ["--set coop", "n_ctx must be 0..73"]),
        (["--methods", "coop", "--set", "coop.batch_size=0"], ["batch_size must be at least 1"]),
        (["--methods", "coop", "--set", "coop.views=-1"], ["views must be at least 0"]),
        (["--methods", "coop", "--set", "coop.lr=0"], ["lr must be a finite number above 0"]),
        (["--methods", "coop", "--set", "coop.lr=1e999"], ["lr must be a finite", "got inf"]),
        (
            ["--methods", "linear_probe", "--set", "linear_probe.tolerance=inf"],
            ["tolerance must be a finite number above 0"],
        ),
        (["--methods", "kgcoop", "--set", "kgcoop.weight=-1"], ["weight must be at least 0"]),
        (["--methods", "gcscoop", "--set", "gcscoop.beta2=2"], ["beta2 is a cosine bound"]),
        (["--methods", "scoop", "--set", "scoop.rho=-0.1"], ["rho must be at least 0"]),
        (["--methods", "prograd", "--set", "prograd.lambda_=-1"], ["lambda_ must be at least 0"]),
        (["--methods", "linear_probe", "--set", "linear_probe.max_iter=0"], ["max_iter"]),
        (
            ["--methods", "kgcoop", "--set", "kgcoop.anchor_template=a {} {}"],
            ["anchor_template", "exactly once"],
        ),
    ],
)
def test_usage_errors(tmp_path, capsys, tree, argv, fragments):
    # argparse takes the last of repeated options: these override run()'s defaults
    code = run(tmp_path, "--dataset", f"shapes={tree}", *argv)
    one_line(capsys, code, EXIT_USAGE, *fragments)


@pytest.mark.parametrize("name", ["mini_counts", "oxford_pets"])
def test_a_dataset_named_like_a_built_in_one_is_refused(tmp_path, capsys, tree, name):
    code = run(tmp_path, "--dataset", f"{name}={tree}")
    one_line(capsys, code, EXIT_USAGE, f"--dataset {name}=", "give yours another name")


def test_a_prompt_longer_than_the_text_encoder_is_refused_not_cut(tmp_path, capsys, tree):
    # [SOS], 73 context tokens, "blue triangle" (2 tokens), "." and [EOT]: 78 of 77 positions
    argv = ["--dataset", f"shapes={tree}", "--methods", "coop", "--set", "coop.n_ctx=73"]
    code = run(tmp_path, *argv, "--set", "coop.epochs=1")
    one_line(capsys, code, EXIT_USAGE, "X blue triangle.'", "is 78 tokens", "text encoder's 77")
    assert _no_results(tmp_path / "results")
    # one-token class names fill the 77 positions exactly: that is no cut
    exact = write_imagefolder(tmp_path / "exact", ("cat", "dog"), (1, 0, 1))
    argv = ["--dataset", f"pets={exact}", "--methods", "coop", "--set", "coop.n_ctx=73"]
    assert run(tmp_path, *argv, "--set", "coop.epochs=1") == 0


def test_nothing_left_to_run_after_filtering(tmp_path, capsys, tree):
    # cross-dataset trains on the source; only a target is selected: an empty matrix
    argv = ["--dataset", f"source={tree}", "--dataset", f"target={tree}", "--datasets", "target"]
    code = run(tmp_path, *argv, "--protocols", "cross_dataset")
    one_line(capsys, code, EXIT_USAGE, "nothing to run", "cross_dataset", "target")


# -- data ------------------------------------------------------------------------------------


def test_standard_datasets_without_a_data_root_stop_before_planning(tmp_path, capsys):
    code = run(tmp_path, "--datasets", "oxford_pets,dtd")
    err = capsys.readouterr().err
    assert code == EXIT_DATA and err.count("\n") == 1 and "runs planned" not in err
    assert "oxford_pets, dtd" in err and "--data-root" in err


def split_file(folder, entries: dict) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "split.json"
    path.write_text(json.dumps(entries))
    return str(path)


def _no_results(results) -> bool:
    return not list((results / "runs").glob("*.parquet")) if results.exists() else True


def test_missing_split_file_of_a_standard_dataset(tmp_path, capsys):
    (tmp_path / "data" / "dtd" / "images").mkdir(parents=True)
    code = run(tmp_path, "--data-root", str(tmp_path / "data"), "--datasets", "dtd")
    one_line(capsys, code, EXIT_DATA, "split_zhou_DescribableTextures.json")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ({"train": [], "test": []}, "expected an object with keys train, val, test"),
        ({"train": [["a.png", "zero", "cat"]], "val": [], "test": []}, "train[0]"),
        (
            {"train": [["a.png", 0, "cat"]], "val": [], "test": [["b.png", 0, " _ "]]},
            "test[0] is ['b.png', 0, ' _ ']; a class name cannot be empty",
        ),
    ],
)
def test_malformed_user_split_file(tmp_path, capsys, content, fragment):
    path = tmp_path / "s" / "split.json"
    path.parent.mkdir()
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    code = run(tmp_path, "--dataset", f"mine={path}")
    one_line(capsys, code, EXIT_DATA, fragment)


def test_image_referenced_but_absent(tmp_path, capsys, tree):
    entries = {
        "train": [["train/red_square/train_0.png", 0, "red_square"]],
        "val": [],
        "test": [["test/red_square/gone.png", 0, "red_square"]],
    }
    code = run(tmp_path, "--dataset", f"mine={split_file(tmp_path / 's', entries)}:{tree}")
    one_line(capsys, code, EXIT_DATA, "image not found", "gone.png")


def test_undecodable_image(tmp_path, capsys):
    broken = write_imagefolder(tmp_path / "broken", CLASSES, (1, 0, 1))
    (broken / "test" / "green_circle" / "test_0.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    code = run(tmp_path, "--dataset", f"mine={broken}")
    one_line(capsys, code, EXIT_DATA, "cannot read image", "test_0.png")


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels in a few dozen bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    rows = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("side", "fragment"), [(30_000, "decompression bomb"), (10_000, "decompression bomb")]
)
def test_decompression_bomb_is_a_data_error_before_training(tmp_path, capsys, tree, side, fragment):
    # 900M pixels is past PIL's error limit; 100M pixels only past its warning limit
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(_png_header(side, side))
    entries = {
        "train": [[str(tree / "train/red_square/train_0.png"), 0, "red_square"]],
        "val": [],
        "test": [["bomb.png", 0, "red_square"]],
    }
    code = run(tmp_path, "--dataset", f"mine={split_file(folder, entries)}", results=tmp_path / "r")
    one_line(capsys, code, EXIT_DATA, "bomb.png", fragment)
    assert _no_results(tmp_path / "r")


def test_a_named_pipe_listed_as_an_image_is_refused(tmp_path, capsys, tree):
    folder = tmp_path / "s"
    folder.mkdir()
    os.mkfifo(folder / "pipe.png")
    entries = {
        "train": [[str(tree / "train/red_square/train_0.png"), 0, "red_square"]],
        "val": [],
        "test": [["pipe.png", 0, "red_square"]],
    }

    def hung(signum, frame):
        raise TimeoutError("the run hung on the named pipe")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        code = run(tmp_path, "--dataset", f"mine={split_file(folder, entries)}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    one_line(capsys, code, EXIT_DATA, "pipe.png", "not a regular file")


def test_dataset_with_no_images(tmp_path, capsys):
    empty = {"train": [], "val": [], "test": []}
    code = run(tmp_path, "--dataset", f"mine={split_file(tmp_path / 's', empty)}")
    one_line(capsys, code, EXIT_DATA, "has no images")


def test_dataset_with_no_training_images_for_a_training_protocol(tmp_path, capsys):
    test_only = write_imagefolder(tmp_path / "t", CLASSES, (0, 0, 1))
    code = run(tmp_path, "--dataset", f"mine={test_only}")
    one_line(capsys, code, EXIT_DATA, "dataset 'mine'", "train split", "has no images")


def test_a_trained_class_without_training_images_is_refused(tmp_path, capsys):
    data = write_imagefolder(tmp_path / "d", CLASSES, (1, 0, 1))
    for image in (data / "train/blue_triangle").iterdir():  # its folder stays, empty
        image.unlink()
    code = run(tmp_path, "--dataset", f"mine={data}")
    one_line(capsys, code, EXIT_DATA, "dataset 'mine'", "1 of the 3 classes", "'blue triangle'")
    assert _no_results(tmp_path / "results")


def test_fewer_training_images_than_shots_is_said_once_and_runs(tmp_path, capsys, tree):
    # one training image per class, two shots: the reference's sampler takes the one
    code = run(tmp_path, "--dataset", f"shapes={tree}", "--shots", "2", "--seeds", "1,2")
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert code == 0 and not _no_results(tmp_path / "results"), err
    assert warnings == [
        "warning: dataset 'shapes' (few_shot, 2 shots): 3 of 3 classes have fewer than 2 "
        "training images (fewest: 1, 'blue triangle'); they train on all they have, as the "
        "reference's sampler does"
    ]


def test_empty_test_split_is_refused_before_any_work(tmp_path, capsys, tree):
    # "good" alone would run; "empty" has training images but no test image
    train = [[str(tree / "train/red_square/train_0.png"), 0, "red_square"]]
    empty = split_file(tmp_path / "s", {"train": train, "val": [], "test": []})
    argv = ["--dataset", f"good={tree}", "--dataset", f"empty={empty}"]
    code = run(tmp_path, *argv)
    one_line(capsys, code, EXIT_DATA, "dataset 'empty'", "test split", "has no images")
    assert _no_results(tmp_path / "results")  # not even the valid dataset ran


def test_base_to_new_without_new_classes_is_refused(tmp_path, capsys):
    one_class = write_imagefolder(tmp_path / "one", CLASSES[:1], (1, 0, 1))
    code = run(tmp_path, "--dataset", f"one={one_class}", "--protocols", "base_to_new")
    one_line(capsys, code, EXIT_DATA, "dataset 'one'", "test split's new classes")
    assert _no_results(tmp_path / "results")


def test_cross_dataset_target_without_test_images_is_refused(tmp_path, capsys, tree):
    train = [[str(tree / "train/red_square/train_0.png"), 0, "red_square"]]
    empty = split_file(tmp_path / "s", {"train": train, "val": [], "test": []})
    argv = ["--dataset", f"source={tree}", "--dataset", f"target={empty}"]
    code = run(tmp_path, *argv, "--protocols", "cross_dataset")
    one_line(capsys, code, EXIT_DATA, "dataset 'target'", "cross_dataset evaluates")
    assert _no_results(tmp_path / "results")


# -- environment -----------------------------------------------------------------------------


def test_checkpoint_of_another_architecture(tmp_path, capsys, tree):
    other = tmp_path / "other.safetensors"
    save_file({"visual.proj": torch.zeros(3, 3), "fc.weight": torch.zeros(2)}, str(other))
    code = run(tmp_path, "--dataset", f"shapes={tree}", checkpoint=other)
    one_line(capsys, code, EXIT_ENVIRONMENT, "is not a checkpoint of this CLIP architecture")


def test_weights_that_cannot_be_downloaded_are_one_line_without_the_hubs_logs(
    tmp_path, capsys, tree, monkeypatch
):
    import logging

    import open_clip.factory

    def offline(*args, **kwargs):  # what the hub client does without network
        logging.getLogger("huggingface_hub").warning("Name or service not known")
        raise OSError("cannot reach the hub: " + "x" * 300 + "\nsecond line")

    monkeypatch.setattr(open_clip.factory, "download_pretrained", offline)
    argv = _argv(tmp_path, "--dataset", f"shapes={tree}", "--backbone", "RN50")
    argv = argv[: argv.index("--checkpoint")] + argv[argv.index("--checkpoint") + 2 :]
    code = main([*argv, "--pretrained", "openai"])
    err = capsys.readouterr().err
    assert code == EXIT_ENVIRONMENT and "Traceback" not in err, err
    (line,) = [line for line in err.splitlines() if line.startswith("error: ")]
    others = err.replace(line, "")
    assert "Name or service" not in others and "Failed to download" not in others, err
    assert "could not get the RN50/openai weights" in line and "--checkpoint FILE" in line
    assert "…" in line and "second line" not in line and len(line) < 400


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_checkpoint_that_is_not_a_weights_file(tmp_path, capsys, tree, suffix):
    junk = tmp_path / f"junk{suffix}"
    junk.write_text("these are not weights")
    code = run(tmp_path, "--dataset", f"shapes={tree}", checkpoint=junk)
    one_line(capsys, code, EXIT_ENVIRONMENT, "is not a readable weights file")


def _tiny_weights() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(CHECKPOINT))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_checkpoint_with_non_finite_weights(tmp_path, capsys, tree, bad):
    weights = _tiny_weights()
    key = sorted(weights)[3]
    weights[key] = weights[key].clone()
    weights[key].view(-1)[0] = bad
    broken = tmp_path / "broken.safetensors"
    save_file(weights, str(broken))
    code = run(tmp_path, "--dataset", f"shapes={tree}", checkpoint=broken)
    one_line(capsys, code, EXIT_ENVIRONMENT, str(broken), "NaN or infinite", key)


@pytest.mark.parametrize(
    ("state", "fragment"),
    [
        ({"visual.proj": 1.5}, "'visual.proj' holds a float, not a tensor"),
        ({"visual.proj": "weights"}, "holds a str, not a tensor"),
        ({"visual.proj": [1.0, 2.0]}, "holds a list, not a tensor"),
        ({"state_dict": {"visual.proj": {"w": torch.zeros(2)}}}, "holds a dict, not a tensor"),
        ({1: torch.zeros(2)}, "key 1 (int) is not a parameter name"),
    ],
)
def test_torch_checkpoint_whose_values_are_not_tensors(tmp_path, capsys, tree, state, fragment):
    path = tmp_path / "odd.pt"
    torch.save(state, path)
    code = run(tmp_path, "--dataset", f"shapes={tree}", checkpoint=path)
    one_line(capsys, code, EXIT_ENVIRONMENT, str(path), fragment)


class _Payload:
    """Unpickling this object would create ``marker``: code execution by a checkpoint."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_code_in_a_checkpoint_never_runs(tmp_path, capsys, tree):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as handle:
        pickle.dump({"state_dict": _Payload(marker)}, handle, protocol=2)
    code = run(tmp_path, "--dataset", f"shapes={tree}", checkpoint=evil)
    one_line(capsys, code, EXIT_ENVIRONMENT, "is not a readable weights file")
    assert not marker.exists()


def test_unwritable_results_directory(tmp_path, capsys, tree):
    blocker = tmp_path / "results"
    blocker.write_text("a file where the results folder should be")
    code = run(tmp_path, "--dataset", f"shapes={tree}", results=blocker)
    one_line(capsys, code, EXIT_ENVIRONMENT, "is not writable")


def test_a_foreign_results_file_fails_the_leaderboard_step_after_a_run(tmp_path, capsys, tree):
    import pyarrow as pa

    runs = tmp_path / "results" / "runs"
    runs.mkdir(parents=True)
    pq.write_table(pa.table({"accuracy": ["high"]}), runs / "foreign.parquet")
    argv = [a for a in _argv(tmp_path, "--dataset", f"shapes={tree}") if a != "--no-leaderboard"]
    code = main(argv)
    one_line(capsys, code, EXIT_ENVIRONMENT, str(runs / "foreign.parquet"), "lacks columns")
    assert len(list(runs.glob("*.parquet"))) == 2  # the run's own result is written and kept


def test_results_from_a_newer_schema_and_unreadable_results(tmp_path, capsys, tree):
    assert run(tmp_path, "--dataset", f"shapes={tree}") == 0
    capsys.readouterr()
    (path,) = (tmp_path / "results" / "runs").glob("*.parquet")
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({"vlprompt_bench_schema_version": "9"}), path)
    code = main(["leaderboard", "--results", str(tmp_path / "results")])
    one_line(capsys, code, EXIT_ENVIRONMENT, "newer version of the suite", "schema 9")

    path.write_bytes(path.read_bytes()[:40])  # a file copied in half
    code = main(["leaderboard", "--results", str(tmp_path / "results")])
    one_line(capsys, code, EXIT_ENVIRONMENT, "is not a readable results file")
    # `run` does not count the damaged run as done: it runs it again and replaces the file
    assert run(tmp_path, "--dataset", f"shapes={tree}") == 0
    assert main(["leaderboard", "--results", str(tmp_path / "results")]) == 0


def test_a_cell_held_by_another_live_runner_is_not_reported_as_done(tmp_path, capsys, tree):
    import subprocess
    import sys

    import pandas as pd

    from benchmark.results import claim_owner

    assert run(tmp_path, "--dataset", f"shapes={tree}") == 0
    (done,) = (tmp_path / "results" / "runs").glob("*.parquet")
    run_id = pd.read_parquet(done).run_id.iloc[0]
    done.unlink()  # as if the other runner had claimed the cell and not finished it yet
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        claim = tmp_path / "results" / "runs" / ".claims" / f"{run_id}.claim"
        claim.write_text(json.dumps(claim_owner(other.pid)))
        capsys.readouterr()
        code = run(tmp_path, "--dataset", f"shapes={tree}")
    finally:
        other.kill()
        other.wait()
    err = capsys.readouterr().err
    assert code == 1, err
    assert "0 runs done, 0 skipped" in err and "1 held by another runner" in err
    assert "held: zeroshot few_shot shapes 1 shots seed 1: claimed by a runner" in err
    assert f"process {other.pid}" in err and "Traceback" not in err
