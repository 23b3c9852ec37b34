"""Every kind of bad input, provoked for real through the command line: one line on stderr,
no traceback, and the exit code the README documents (2 usage, 3 data, 4 environment)."""

from __future__ import annotations

import json
import pickle

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
    return main(
        [
            "run",
            "--methods",
            "zeroshot",
            "--protocols",
            "few_shot",
            "--shots",
            "1",
            "--seeds",
            "1",
            "--backbone",
            MODEL_NAME,
            "--checkpoint",
            str(checkpoint),
            "--device",
            "cpu",
            "--results",
            str(results or tmp_path / "results"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-leaderboard",
            *argv,
        ]
    )


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
        (["--set", "zeroshot.ensemble=maybe"], ["--set zeroshot.ensemble", "true or false"]),
    ],
)
def test_usage_errors(tmp_path, capsys, tree, argv, fragments):
    # argparse takes the last of repeated options: these override run()'s defaults
    code = run(tmp_path, "--dataset", f"shapes={tree}", *argv)
    one_line(capsys, code, EXIT_USAGE, *fragments)


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


def test_dataset_with_no_images(tmp_path, capsys):
    empty = {"train": [], "val": [], "test": []}
    code = run(tmp_path, "--dataset", f"mine={split_file(tmp_path / 's', empty)}")
    one_line(capsys, code, EXIT_DATA, "has no images")


def test_dataset_with_no_training_images_for_a_training_protocol(tmp_path, capsys):
    test_only = write_imagefolder(tmp_path / "t", CLASSES, (0, 0, 1))
    code = run(tmp_path, "--dataset", f"mine={test_only}")
    one_line(capsys, code, EXIT_USAGE, "no training images")


# -- environment -----------------------------------------------------------------------------


def test_checkpoint_of_another_architecture(tmp_path, capsys, tree):
    other = tmp_path / "other.safetensors"
    save_file({"visual.proj": torch.zeros(3, 3), "fc.weight": torch.zeros(2)}, str(other))
    code = run(tmp_path, "--dataset", f"shapes={tree}", checkpoint=other)
    one_line(capsys, code, EXIT_ENVIRONMENT, "is not a checkpoint of this CLIP architecture")


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_checkpoint_that_is_not_a_weights_file(tmp_path, capsys, tree, suffix):
    junk = tmp_path / f"junk{suffix}"
    junk.write_text("these are not weights")
    code = run(tmp_path, "--dataset", f"shapes={tree}", checkpoint=junk)
    one_line(capsys, code, EXIT_ENVIRONMENT, "is not a readable weights file")


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
