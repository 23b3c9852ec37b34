"""Protocols own their leaderboard layouts: a third-party protocol without the optional
attributes gets the generic table (run end to end through an inline plugin), one with them
gets its own layout, place on the page and plots; a failing layout falls back to the generic
table with a warning; wide tables print in blocks in Markdown."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmark.hookspecs import hookimpl
from benchmark.leaderboard import (
    Column,
    Key,
    Layout,
    Mean,
    Scope,
    build_board,
    leaderboard,
    render,
)
from benchmark.plots import plots
from benchmark.protocol import Plan
from benchmark.registry import build_registry
from benchmark.runner import Runner
from tests.conftest import TOY_DATASET, toy_request
from tests.test_leaderboard import builtin_protocols, by_cell, cells_of, frame, seeded


class Held:
    """A third-party protocol with none of the optional leaderboard attributes: trains on
    K shots of the source and tests on the source's and the target's test splits."""

    name = "held"
    summary = "few-shot training, tested on the source and on every target"
    default_shots = (2,)

    def training_datasets(self, selected, catalog):
        return [n for n in selected if catalog.spec(n).role == "source"]

    def plan(self, dataset, shots, seed, catalog) -> Plan:
        from vlprompt_protocols.cross_dataset import evaluations
        from vlprompt_protocols.few_shot import full_training_data

        return Plan(
            full_training_data(dataset, shots, seed, catalog),
            evaluations(dataset, "target", catalog),
        )

    def derived(self, accuracy):
        return []


class HeldPlugin:
    @hookimpl
    def register_protocols(self, register) -> None:
        register(Held())


def test_a_protocol_without_layout_gets_the_generic_table(toy_plugin, tiny_backbone, tmp_path):
    registry = build_registry(autoload=False, extra_plugins=[toy_plugin, HeldPlugin()])
    request = toy_request(
        tiny_backbone,
        tmp_path,
        methods=["zeroshot"],
        protocols=["held", "few_shot"],
        datasets=[TOY_DATASET, "toy_target"],
        seeds=[1],
    )
    summary = Runner(registry, request, progress=lambda m: None).run()
    assert summary.succeeded == 3 and not summary.failed  # few-shot trains on both
    df = pd.read_parquet(tmp_path / "results" / "runs")
    protocols = registry.protocol_objects()
    board = build_board(df, protocols=protocols, method_titles=registry.method_titles())
    # the built-in protocol (leaderboard_order 10) first, then the one without an order
    assert [s.protocol for s in board.sections] == ["few_shot", "held"]
    held = board.sections[1]
    backbone, pretrained = df["backbone"].iloc[0], df["pretrained"].iloc[0]
    assert held.heading == f"held ({backbone}, {pretrained}) · 2 shots · 1 seed"
    assert [c.name for c in held.table.columns] == [TOY_DATASET, f"{TOY_DATASET} → toy_target"]
    [clip] = held.table.rows
    assert clip.label == "CLIP" and all(cell is not None for cell in clip.cells)
    # no plots declared: only the few-shot figure
    assert [p.protocol for p in plots(df, protocols=protocols)] == ["few_shot"]


class Ranked(Held):
    """The same protocol with its own layout, place on the page and figures."""

    name = "ranked"
    leaderboard_order = 5
    leaderboard_plots = ("accuracy_vs_shots", "no_such_plot")

    def leaderboard_layouts(self, scope: Scope) -> list[Layout]:
        source = scope.sources()[0]
        keys = tuple(Key(source, t, "all") for t in scope.targets(source))
        return [Layout((Column("Transfer", Mean(keys)),), rank_by=0, caption="own layout")]


class Broken(Held):
    name = "broken"

    def leaderboard_layouts(self, scope: Scope) -> list[Layout]:
        raise KeyError("oops")


def third_party_rows(protocol: str) -> list[dict]:
    rows = []
    for method, value in (("coop", 60.0), ("kgcoop", 70.0)):
        rows += seeded((value,) * 3, method=method, protocol=protocol)
        rows += seeded((value - 5,) * 3, method=method, protocol=protocol, eval_dataset="dtd")
    return rows


def test_a_protocols_own_layout_order_and_plots() -> None:
    protocols = {**builtin_protocols(), "ranked": Ranked()}
    df = frame(third_party_rows("ranked") + seeded((50.0,) * 3))
    board = build_board(df, protocols=protocols)
    assert [s.protocol for s in board.sections] == ["ranked", "few_shot"]  # order 5 < 10
    table = board.sections[0].table
    assert board.sections[0].heading.endswith("· own layout")
    assert [r.label for r in table.rows] == ["kgcoop", "coop"]
    assert by_cell(table)["kgcoop", "Transfer"].mean == pytest.approx(65.0)
    with pytest.warns(UserWarning, match="protocol 'ranked' names an unknown plot 'no_such_plot'"):
        found = plots(df, protocols=protocols)
    assert [(p.protocol, p.name) for p in found] == [
        ("ranked", "ranked_ViT-B-16_openai"),
        ("few_shot", "few_shot_ViT-B-16_openai"),
    ]


def test_a_failing_layout_falls_back_to_the_generic_table() -> None:
    protocols = {**builtin_protocols(), "broken": Broken()}
    with pytest.warns(UserWarning, match=r"protocol 'broken': its leaderboard layout failed"):
        text = leaderboard(frame(third_party_rows("broken")), protocols=protocols)
    assert cells_of(text)[0] == ["Method", "imagenet", "imagenet → dtd"]
    assert ["coop", "60.0 ± 0.0", "55.0 ± 0.0"] in cells_of(text)


def test_wide_tables_print_in_blocks_of_three_datasets() -> None:
    datasets = ("imagenet", "caltech101", "oxford_pets", "dtd")
    rows = []
    for method, value in (("coop", 70.0), ("kgcoop", 75.0)):
        for dataset in datasets:
            for split in ("base", "new"):
                rows += seeded(
                    (value,) * 3,
                    method=method,
                    protocol="base_to_new",
                    dataset=dataset,
                    split=split,
                )
    [section] = build_board(frame(rows), protocols=builtin_protocols()).sections
    assert len(section.table.columns) == 3 * 5  # Average and four datasets
    blocks = render(section.table).split("\n\n")
    assert len(blocks) == 2
    first, second = ([line[0] for line in cells_of(block)][2:] for block in blocks)
    assert first == second == ["kgcoop", "coop"]  # the same ranking in every block
    assert cells_of(blocks[1])[0][1:] == [
        f"{d} {s}" for d in ("imagenet", "oxford_pets") for s in ("Base", "New", "H")
    ]
    assert "dtd Base" in render(section.table, "csv").splitlines()[0]  # csv: one table
