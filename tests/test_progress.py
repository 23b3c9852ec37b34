"""The matrix's progress: counts, elapsed time and an ETA from the finished groups; cheap
cells first; one line per group, the same in a log as in a terminal."""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.progress import MatrixProgress, duration
from benchmark.runner import Runner
from tests.conftest import toy_request


@dataclass
class FakeCell:
    method: str


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_durations_read_as_a_person_writes_them():
    assert [duration(s) for s in (0, 42.4, 185, 7860)] == ["0s", "42s", "3m05s", "2h11m"]


def test_the_eta_is_each_method_s_mean_time_per_cell_times_its_cells_left():
    clock = Clock()
    slow = [[FakeCell("slow")] * 2 for _ in range(3)]  # 3 groups of 2 cells
    fast = [[FakeCell("fast")] * 2 for _ in range(2)]
    progress = MatrixProgress([*fast, *slow], clock)
    assert progress.total == 10 and progress.eta() is None
    assert "time left: after the first group" in progress.line()
    progress.started(fast[0])
    clock.now = 2.0  # 1 s per fast cell
    progress.finished(fast[0])
    # nothing of "slow" finished: its 6 cells are estimated at the overall mean, 1 s
    assert progress.eta() == 2 * 1.0 + 6 * 1.0
    progress.started(slow[0])
    clock.now = 22.0  # 10 s per slow cell
    progress.finished(slow[0])
    assert progress.eta() == 2 * 1.0 + 4 * 10.0
    assert progress.line() == "4/10 cells, 22s elapsed, about 42s left"
    progress.skipped(2, "slow")  # done by another runner meanwhile
    assert progress.total == 8 and progress.eta() == 2 * 1.0 + 2 * 10.0


def test_cells_that_train_nothing_run_first_and_each_group_says_where_the_matrix_is(
    toy_registry, tiny_backbone, tmp_path
):
    request = toy_request(tiny_backbone, tmp_path, methods=["coop", "zeroshot"], seeds=[1])
    lines: list[str] = []
    summary = Runner(toy_registry, request, progress=lines.append).run()
    assert summary.succeeded == 2
    groups = [line for line in lines if line.startswith("[")]
    assert [g.split("] ")[1].split(" · ")[0] for g in groups] == ["zeroshot", "coop"]
    assert groups[0].startswith("[0/2 cells, ") and "after the first group" in groups[0]
    assert groups[1].startswith("[1/2 cells, ") and " left] " in groups[1]


def test_a_log_gets_lines_and_no_bars(tmp_path, capsys):
    """Written to a file or a pipe (not a terminal), the run's output holds the group lines
    and none of the bars' carriage-return updates."""
    from benchmark.cli import main
    from benchmark.miniworld.model import CHECKPOINT, MODEL_NAME
    from tests.conftest import write_imagefolder

    data = write_imagefolder(tmp_path / "shapes", ("red square", "green circle"), (2, 1, 2))
    argv = ["run", "--methods", "coop", "--protocols", "few_shot", "--shots", "1"]
    argv += ["--dataset", f"shapes={data}", "--set", "coop.epochs=2", "--no-leaderboard"]
    argv += ["--backbone", MODEL_NAME, "--checkpoint", str(CHECKPOINT), "--device", "cpu"]
    argv += ["--results", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "encoding images" not in err and "epoch/s" not in err
    assert "[0/3 cells, " in err and "1 shot · seeds 1,2,3" in err
