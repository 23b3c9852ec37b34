"""Property-based tests: the CLI's argument parsing, ``--set`` and the split-file reader.

(The few-shot sampler's properties are in ``test_splitfile_sampling.py``.)
"""

from __future__ import annotations

import json
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from benchmark.cli import build_parser
from benchmark.config import apply_overrides, parse_sets
from benchmark.datasets.splitfile import read_split_file
from benchmark.errors import DataError, UserError

FEW = settings(max_examples=60, deadline=None)

# -- command line ------------------------------------------------------------------------------

NAME = st.text(string.ascii_lowercase + string.digits + "_:*", min_size=1, max_size=12)
PADDING = st.sampled_from(["", " ", "  "])


def parse(*argv: str):
    return build_parser().parse_args(["run", *argv])


@FEW
@given(names=st.lists(st.tuples(PADDING, NAME, PADDING), min_size=1, max_size=5))
def test_name_lists_round_trip(names):
    text = ",".join(f"{a}{n}{b}" for a, n, b in names)
    expected = [n for _, n, _ in names]
    args = parse(f"--methods={text}", f"--protocols={text}", f"--datasets={text}")
    assert args.methods == args.protocols == args.datasets == expected


@FEW
@given(
    shots=st.lists(st.integers(1, 2**31 - 1), min_size=1, max_size=6),
    seeds=st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=6),
)
def test_integer_lists_round_trip(shots, seeds):
    args = parse("--shots", ",".join(map(str, shots)), f"--seeds={','.join(map(str, seeds))}")
    assert (args.shots, args.seeds) == (list(dict.fromkeys(shots)), list(dict.fromkeys(seeds)))


@FEW
@given(seed=st.one_of(st.integers(max_value=-1), st.integers(min_value=2**31)))
def test_seeds_the_results_cannot_hold_are_usage_errors(seed):
    with pytest.raises(UserError, match="seeds must be whole numbers from 0 to 2147483647"):
        parse(f"--seeds={seed}")


@FEW
@given(text=st.text(max_size=12))
@example(text="1\x1f")  # str.strip removes \x1f, int() alone would not
def test_any_shots_text_parses_or_is_a_one_line_usage_error(text):
    try:
        args = parse(f"--shots={text}")
    except UserError as exc:
        assert exc.exit_code == 2 and "\n" not in str(exc)
        assert "--shots" in str(exc)
        return
    assert args.shots and all(isinstance(k, int) and k >= 1 for k in args.shots)
    given = [int(item.strip()) for item in text.split(",") if item.strip()]
    assert args.shots == list(dict.fromkeys(given))


@FEW
@given(argv=st.lists(st.text(string.printable, max_size=10), max_size=6))
@example(argv=["run", "x\ny"])  # argparse quotes unrecognised arguments raw
def test_any_argv_parses_or_is_a_one_line_usage_error(argv):
    assume(not any(a.startswith(("-h", "--h")) for a in argv))  # --help prints and exits
    try:
        build_parser().parse_args(argv)
    except UserError as exc:
        assert exc.exit_code == 2 and "\n" not in str(exc).strip()


# -- --set -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fields:
    epochs: int = 10
    lr: float = 0.002
    ctx_init: str = ""
    csc: bool = False
    position: Literal["end", "middle", "front"] = "end"
    rho: float | None = None


BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True}
BOOL_WORDS |= {"false": False, "0": False, "no": False, "off": False}
FLOATS = st.floats(allow_nan=False, width=64)
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), max_size=20)


def mixed_case(word: str):
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda upper: "".join(c.upper() if u else c for c, u in zip(word, upper, strict=True))
    )


@FEW
@given(
    epochs=st.integers(-(10**12), 10**12),
    lr=FLOATS,
    ctx_init=TEXT,
    csc=st.sampled_from(sorted(BOOL_WORDS)).flatmap(mixed_case),
    position=st.sampled_from(["end", "middle", "front"]),
    rho=st.one_of(st.sampled_from(["none", "None", "null"]), FLOATS.map(repr)),
)
def test_valid_set_values_round_trip(epochs, lr, ctx_init, csc, position, rho):
    items = [
        f"m.epochs={epochs}",
        f"m.lr={lr!r}",
        f"m.ctx_init={ctx_init}",
        f"m.csc={csc}",
        f" m.position = {position}",
        f"m.rho={rho}",
    ]
    config = apply_overrides(Fields(), "m", parse_sets(items)["m"])
    expected_rho = None if rho.lower() in ("none", "null") else float(rho)
    assert config == Fields(epochs, lr, ctx_init, BOOL_WORDS[csc.lower()], position, expected_rho)


@FEW
@given(field=st.sampled_from(["epochs", "lr", "csc", "position", "rho"]), text=st.text(max_size=8))
def test_set_values_parse_as_python_would_or_give_a_one_line_type_error(field, text):
    text = text.strip()
    try:
        value = getattr(apply_overrides(Fields(), "m", {field: text}), field)
    except UserError as exc:
        assert exc.exit_code == 2 and "\n" not in str(exc)
        assert str(exc).startswith(f"--set m.{field}: ")
        return
    if field == "epochs":
        assert value == int(text)
    elif field == "lr":
        assert value == float(text)
    elif field == "csc":
        assert value is BOOL_WORDS[text.lower()]
    elif field == "position":
        assert value == text and text in ("end", "middle", "front")
    else:
        assert value is None if text.lower() in ("none", "null") else value == float(text)


@FEW
@given(item=st.text(max_size=15))
def test_set_items_are_method_field_value_or_rejected(item):
    try:
        parsed = parse_sets([item])
    except UserError as exc:
        assert "expected method.field=value" in str(exc) and "\n" not in str(exc)
        return
    ((method, fields),) = parsed.items()
    ((field, value),) = fields.items()
    key, _, rest = item.partition("=")
    assert method and field and f"{method}.{field}" == key.strip()
    assert value == rest.strip()


# -- split files -----------------------------------------------------------------------------

CLASS = st.text(string.ascii_letters + "_- ", min_size=1, max_size=10).filter(
    lambda name: name.replace("_", " ").strip()  # an empty class name is refused
)
RELATIVE = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=8).map(
    lambda stem: f"{stem}.jpg"
)


@st.composite
def split_files(draw):
    """A valid split file: labels 0..n-1, one class name per label, any split sizes."""
    names = draw(st.lists(CLASS, min_size=1, max_size=5, unique_by=lambda n: n.replace("_", " ")))
    content = {}
    for split in ("train", "val", "test"):
        labels = draw(st.lists(st.integers(0, len(names) - 1), max_size=8))
        content[split] = [[draw(RELATIVE), label, names[label]] for label in labels]
    used = {entry[1] for split in content.values() for entry in split}
    assume(used == set(range(len(names))))  # every label appears somewhere, no gaps
    return content, names


@FEW
@given(split_files())
def test_valid_split_files_read_back(case):
    content, names = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "split.json"
        path.write_text(json.dumps(content))
        splits = read_split_file(path, Path(folder) / "images")
    assert splits.classnames == tuple(n.replace("_", " ") for n in names)
    for split in ("train", "val", "test"):
        samples = getattr(splits, split)
        assert [(s.path, s.label) for s in samples] == [
            (str(Path(folder) / "images" / rel), label) for rel, label, _ in content[split]
        ]
        assert all(s.classname == splits.classnames[s.label] for s in samples)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**15), 10**15) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)
ENTRY = st.lists(st.one_of(RELATIVE, st.integers(-3, 10**15), CLASS, st.none()), max_size=4)


@FEW
@given(
    content=st.one_of(
        JSON,
        st.fixed_dictionaries({s: st.lists(ENTRY, max_size=4) for s in ("train", "val", "test")}),
    )
)
def test_any_json_reads_or_is_a_one_line_data_error(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "split.json"
        path.write_text(json.dumps(content))
        try:
            splits = read_split_file(path, Path(folder))
        except DataError as exc:
            assert exc.exit_code == 3 and "\n" not in str(exc)
            return
    assert list(range(len(splits.classnames))) == sorted(
        {s.label for split in (splits.train, splits.val, splits.test) for s in split}
    )


@pytest.mark.parametrize("label", [10**12, -1])
def test_far_or_negative_labels_are_reported_quickly(tmp_path, label):
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"train": [["a.jpg", label, "x"]], "val": [], "test": []}))
    with pytest.raises(DataError, match="without gaps"):
        read_split_file(path, tmp_path)
