"""The command line: listing without torch, one-line errors with exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cli import main


def _python(*code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "\n".join(code)], capture_output=True, text=True, timeout=120
    )


def test_list_methods_does_not_import_torch():
    result = _python(
        "import sys",
        "from benchmark.cli import main",
        "code = main(['list', 'methods'])",
        "assert 'torch' not in sys.modules, 'listing imported torch'",
        "raise SystemExit(code)",
    )
    assert result.returncode == 0, result.stderr
    assert "coop" in result.stdout and "zeroshot" in result.stdout


@pytest.mark.parametrize("what", ["protocols", "datasets"])
def test_list_other_kinds(what, capsys):
    assert main(["list", what]) == 0
    out = capsys.readouterr().out
    assert ("few_shot" if what == "protocols" else "world") in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--methods", "copo"], "unknown method 'copo'. Did you mean 'coop'?"),
        (["run", "--protocols", "fewshot"], "Did you mean 'few_shot'?"),
        (["run", "--datasets", "imagenett"], "Did you mean 'imagenet'?"),
        (["run", "--shots", "0"], "shot counts must be at least 1"),
        (["run", "--seeds", "one"], "expected comma-separated integers"),
        (["run", "--methods", "coop", "--set", "coop.epoch=3"], "coop has no field 'epoch'"),
        (["run", "--methods", "coop", "--set", "coop.epochs=many"], "expected int"),
        (["run", "--data-root", "/nonexistent/data"], "no such folder"),
        (["leaderboard", "--format", "html"], "invalid choice"),
        (["list", "plugins"], "invalid choice"),
    ],
)
def test_user_mistakes_get_one_line_and_exit_code(argv, message, capsys, tmp_path):
    code = main([*argv, *(["--results", str(tmp_path)] if argv[0] == "run" else [])])
    err = capsys.readouterr().err
    assert code in (2, 3)
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_leaderboard_without_results_says_so(tmp_path, capsys):
    assert main(["leaderboard", "--results", str(tmp_path)]) == 2
    assert "no results" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--seeds", str(2**63)], "seeds must be whole numbers from 0 to 2147483647"),
        (["run", "--seeds", "1,-3"], "seeds must be whole numbers from 0 to 2147483647"),
        (["run", "--seeds", str(2**31)], "seeds must be whole numbers from 0 to 2147483647"),
        (["run", "--shots", str(2**40)], "shot counts must be whole numbers from 1 to 2147483647"),
    ],
)
def test_numbers_the_results_cannot_hold_are_refused_when_parsed(argv, message, capsys, tmp_path):
    # an unknown protocol as well: if the number got through, the run stops there, quickly
    code = main([*argv, "--protocols", "no_such_protocol", "--results", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_repeated_seeds_and_shots_are_one_each():
    from benchmark.cli.options import positive_ints, seeds

    assert seeds("3,1,3") == [3, 1]
    assert positive_ints("16,1,16") == [16, 1]


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["list", "methods"], 141),
        (["datasets", "check", "--data-root", "{tmp}"], 141),
        (["leaderboard", "--results", "results/mini"], 141),
        (["--help"], 0),  # argparse itself drops a help text it cannot write
    ],
)
def test_a_closed_stdout_ends_quietly(argv, code, tmp_path):
    """`... | head` closes the pipe early: no traceback, the exit code of SIGPIPE."""
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmark", *argv],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # the reader is gone before anything is written
    _, err = process.communicate(timeout=120)
    assert process.returncode == code, err.decode()
    assert err == b""
