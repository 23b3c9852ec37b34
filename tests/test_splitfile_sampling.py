"""The CoOp split-file reader and the few-shot sampler."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.datasets.sampling import few_shot
from benchmark.datasets.spec import Sample
from benchmark.datasets.splitfile import classnames_of, read_split_file
from benchmark.errors import DataError


def write(path: Path, content: object) -> Path:
    path.write_text(json.dumps(content))
    return path


GOOD = {
    "train": [["a/1.jpg", 0, "sea_lion"], ["b/1.jpg", 1, "otter"]],
    "val": [["a/2.jpg", 0, "sea_lion"]],
    "test": [["b/2.jpg", 1, "otter"], ["a/3.jpg", 0, "sea_lion"]],
}


def test_reads_a_split_file(tmp_path):
    splits = read_split_file(write(tmp_path / "s.json", GOOD), tmp_path / "imgs")
    assert splits.classnames == ("sea lion", "otter")
    assert splits.train[0] == Sample(str(tmp_path / "imgs" / "a" / "1.jpg"), 0, "sea lion")
    assert (len(splits.train), len(splits.val), len(splits.test)) == (2, 1, 2)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([1, 2], "expected an object with keys"),
        ({"train": [], "val": []}, "expected an object with keys"),
        ({"train": {}, "val": [], "test": []}, "must be a list"),
        ({"train": [["a.jpg", 0]], "val": [], "test": []}, r"train\[0\]"),
        ({"train": [["a.jpg", "0", "x"]], "val": [], "test": []}, r"train\[0\]"),
        ({"train": [["a.jpg", True, "x"]], "val": [], "test": []}, r"train\[0\]"),
        ({"train": [], "val": [[1, 0, "x"]], "test": []}, r"val\[0\]"),
        ({"train": [["a.jpg", 1, "x"]], "val": [], "test": []}, "missing labels"),
    ],
)
def test_malformed_split_files(tmp_path, content, message):
    with pytest.raises(DataError, match=message):
        read_split_file(write(tmp_path / "s.json", content), tmp_path)


def test_missing_and_invalid_json(tmp_path):
    with pytest.raises(DataError, match="split file not found"):
        read_split_file(tmp_path / "absent.json", tmp_path)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_split_file(tmp_path / "bad.json", tmp_path)


def test_classnames_of_empty_and_gaps():
    assert classnames_of([]) == ()
    with pytest.raises(DataError, match=r"missing labels \[1\]"):
        classnames_of([Sample("a", 0, "x"), Sample("b", 2, "z")])


# -- few-shot sampler ------------------------------------------------------------------------


def make(counts: list[int], prefix: str) -> list[Sample]:
    """Samples with counts[c] items of class c, classes interleaved."""
    samples = []
    for i in range(max(counts, default=0)):
        for label, count in enumerate(counts):
            if i < count:
                samples.append(Sample(f"{prefix}/{label}/{i}.jpg", label, f"class {label}"))
    return samples


@settings(max_examples=60, deadline=None)
@given(
    train_counts=st.lists(st.integers(0, 12), min_size=1, max_size=6),
    val_counts=st.lists(st.integers(0, 8), min_size=0, max_size=6),
    shots=st.sampled_from([1, 2, 4, 8, 16]),
    seed=st.integers(0, 2**31 - 1),
)
def test_few_shot_properties(train_counts, val_counts, shots, seed):
    train, val = make(train_counts, "train"), make(val_counts, "val")
    drawn_train, drawn_val = few_shot(train, val, shots, seed)
    for drawn, source, counts, k in (
        (drawn_train, train, train_counts, shots),
        (drawn_val, val, val_counts, min(shots, 4)),
    ):
        per_class = Counter(s.label for s in drawn)
        for label, count in enumerate(counts):
            assert per_class.get(label, 0) == min(k, count)
        assert len(set(drawn)) == len(drawn)  # no duplicates
        assert set(drawn) <= set(source)
    # classes come in order of first appearance
    order = list(dict.fromkeys(s.label for s in train))
    assert list(dict.fromkeys(s.label for s in drawn_train)) == order
    assert few_shot(train, val, shots, seed) == (drawn_train, drawn_val)
    # val is drawn after train from the same generator: the training draw ignores val
    assert few_shot(train, [], shots, seed)[0] == drawn_train


def test_few_shot_seeds_differ_and_val_cap():
    train, val = make([50] * 5, "train"), make([20] * 5, "val")
    a = few_shot(train, val, 16, seed=1)
    b = few_shot(train, val, 16, seed=2)
    assert a != b
    assert len(a[0]) == 80 and len(a[1]) == 20  # val: min(16, 4) per class
    assert few_shot(train, val, 2, seed=1)[1] != [] and len(few_shot(train, val, 2, 1)[1]) == 10


def test_few_shot_rejects_zero_shots():
    with pytest.raises(ValueError, match="at least 1"):
        few_shot([], [], 0, seed=1)


# -- what a split file must not hold ---------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (  # label 1 is "otter" on one line and "seal" on another
            {
                "train": [["a", 0, "sea_lion"], ["b", 1, "otter"]],
                "val": [],
                "test": [["c", 1, "seal"]],
            },
            ["label 1 has several class names", "'otter'", "'seal'"],
        ),
        (  # two labels with the same class name
            {"train": [["a", 0, "otter"], ["b", 1, "otter"]], "val": [], "test": []},
            ["class name 'otter' is used by several labels", "[0, 1]"],
        ),
        (  # the same once '_' reads as a space
            {"train": [["a", 0, "sea_lion"], ["b", 1, "sea lion"]], "val": [], "test": []},
            ["class name 'sea lion' is used by several labels"],
        ),
        (
            {"train": [["a\u0000.jpg", 0, "otter"]], "val": [], "test": []},
            ["train[0]", "NUL"],
        ),
        (
            {"train": [["a.jpg", 0, "ot\u0000ter"]], "val": [], "test": []},
            ["train[0]", "NUL"],
        ),
    ],
)
def test_inconsistent_labels_and_nul_bytes_are_refused(tmp_path, content, fragments):
    with pytest.raises(DataError) as error:
        read_split_file(write(tmp_path / "s.json", content), tmp_path)
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_one_class_name_spelt_with_underscores_and_spaces_is_one_class(tmp_path):
    content = {"train": [["a", 0, "sea_lion"]], "val": [["b", 0, "sea lion"]], "test": []}
    assert read_split_file(write(tmp_path / "s.json", content), tmp_path).classnames == (
        "sea lion",
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"train": [["a", 1' + "0" * 5000 + ', "x"]], "val": [], "test": []}', "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b'{"train": [["a\x00.jpg", 0, "x"]], "val": [], "test": []}', "not valid JSON"),
    ],
)
def test_split_files_that_break_the_json_parser(tmp_path, text, fragment):
    path = tmp_path / "s.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(DataError, match=fragment):
        read_split_file(path, tmp_path)


def test_the_fingerprint_is_the_split_file_content(tmp_path):
    path = write(tmp_path / "s.json", GOOD)
    first = read_split_file(path, tmp_path / "imgs").fingerprint
    assert first and read_split_file(path, tmp_path / "other").fingerprint == first
    changed = dict(GOOD, test=GOOD["test"][:1])
    assert read_split_file(write(path, changed), tmp_path / "imgs").fingerprint != first
