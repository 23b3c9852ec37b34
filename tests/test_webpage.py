"""The HTML leaderboard in a real headless browser (Debian's chromium, driven by selenium):
the tables render ranked with the best cells in bold, clicking a header sorts (in grouped
tables too), a method's paper and Δ rows stay under it, figures sit right after their
tables, the page keeps margins and references nothing outside itself.

The test saves a screenshot of the whole page, to the path in the environment variable
``LEADERBOARD_SCREENSHOT`` if set, else to the test's temporary folder.

chromium and chromedriver are required (``.ci/run`` installs them; locally
``apt-get install chromium chromium-driver``): the test fails, never skips, without them.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from benchmark.plots import plots
from benchmark.reference import load
from benchmark.webpage import page
from tests.test_leaderboard import (
    METHOD_TITLES,
    TITLES,
    board_of,
    builtin_protocols,
    frame,
    golden_df,
)
from tests.test_leaderboard_reference import base_to_new_rows

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    assert CHROMIUM and CHROMEDRIVER, (
        "the browser test needs chromium and chromedriver: apt-get install chromium chromium-driver"
    )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def column(table, index: int) -> list[str]:
    """The text of one column of a rendered table, body rows in page order."""
    return [
        row.find_elements("tag name", "td")[index].text
        for row in table.find_elements("css selector", "tbody tr")
    ]


def headers(table) -> list[str]:
    return [th.text for th in table.find_elements("css selector", "thead tr.columns th")]


def test_tables_render_rank_mark_and_sort(browser, tmp_path: Path) -> None:
    df = golden_df()
    path = tmp_path / "leaderboard.html"
    figures = plots(df, TITLES, method_titles=METHOD_TITLES, protocols=builtin_protocols())
    board = board_of(df, method_titles=METHOD_TITLES)
    path.write_text(page(board, figures), encoding="utf-8")
    browser.set_window_size(1300, 900)
    browser.get(path.as_uri())
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1300, height)
    screenshot = Path(os.environ.get("LEADERBOARD_SCREENSHOT") or tmp_path / "leaderboard.png")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    tables = browser.find_elements("css selector", "table.sortable")
    headings = [h.text for h in browser.find_elements("tag name", "h2")]
    assert len(tables) == len(headings) == 4
    assert headings[0] == "few_shot (ViT-B-16, openai) · 16 shots · 3 seeds"
    few_shot = tables[0]
    assert headers(few_shot) == ["Method", "ImageNet", "Caltech101", "OxfordPets", "Average"]
    assert column(few_shot, 0) == ["CoOp", "CLIP", "KgCoOp"]  # ranked by Average
    assert column(few_shot, 1) == ["62.1 ± 0.4", "58.4 ± 0.4", "63.4 ± 0.4"]
    best = [td.text for td in few_shot.find_elements("css selector", "td.best")]
    assert best == ["87.1 ± 0.4", "80.1", "63.4 ± 0.4", "92.4 ± 0.4"]
    weight = few_shot.find_element("css selector", "td.best").value_of_css_property("font-weight")
    assert int(weight) >= 700

    imagenet = few_shot.find_elements("css selector", "thead tr.columns th")[1]
    imagenet.click()
    assert column(few_shot, 0) == ["CLIP", "CoOp", "KgCoOp"]  # ascending
    assert imagenet.get_attribute("aria-sort") == "ascending"
    imagenet.click()
    assert column(few_shot, 0) == ["KgCoOp", "CoOp", "CLIP"]  # descending
    average = few_shot.find_elements("css selector", "thead tr.columns th")[4]
    average.click()
    assert column(few_shot, 0) == ["CLIP", "CoOp", "KgCoOp"]  # the empty cell last
    few_shot.find_elements("css selector", "thead tr.columns th")[0].click()
    assert column(few_shot, 0) == ["CLIP", "CoOp", "KgCoOp"]  # text columns sort too

    # base-to-new: the papers' two header rows; sorting by a grouped column
    base_to_new = tables[1]
    groups = [th.text for th in base_to_new.find_elements("css selector", "thead tr.groups th")]
    assert groups == ["", "Average", "ImageNet", "Caltech101"]
    assert headers(base_to_new)[:4] == ["Method", "Base", "New", "H (mean of H)"]
    assert column(base_to_new, 0) == ["CoOp", "linear_probe"]
    base_to_new.find_elements("css selector", "thead tr.columns th")[4].click()  # ImageNet Base
    base_to_new.find_elements("css selector", "thead tr.columns th")[4].click()
    assert column(base_to_new, 0) == ["linear_probe", "CoOp"]

    # figures right after their tables: the few-shot curves in the few-shot section, the
    # base-vs-new scatter in the base-to-new section
    sections = browser.find_elements("tag name", "section")
    captions = [
        [f.get_attribute("alt") for f in s.find_elements("css selector", "figure img")]
        for s in sections
    ]
    assert captions[0] == ["Accuracy against shots · few_shot (ViT-B-16, openai)"]
    assert captions[1][0].startswith("Base vs new · base_to_new (ViT-B-16, openai) · 16 shots")
    assert captions[2:] == [[], []]

    # margins: nothing touches the window's edges, even in a narrow window
    browser.set_window_size(700, 900)
    left = browser.execute_script("return arguments[0].getBoundingClientRect().left", tables[0])
    assert left >= 20


def test_comparison_rows_move_with_their_method(browser, tmp_path: Path) -> None:
    df = frame(base_to_new_rows())
    path = tmp_path / "reference.html"
    figures = plots(df, TITLES, protocols=builtin_protocols())
    board = board_of(df, reference=load())
    path.write_text(page(board, figures), encoding="utf-8")
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["'](?!data:)""", text)  # nothing outside the page
    browser.set_window_size(1300, 900)
    browser.get(path.as_uri())

    [table] = browser.find_elements("css selector", "table.sortable")
    h = table.find_elements("css selector", "thead tr.columns th")[6]  # OxfordPets H
    h.click()
    h.click()  # descending
    methods = column(table, 0)
    assert methods[:3] == ["gcscoop", "gcscoop · paper", "gcscoop · Δ"]
    for i, method in enumerate(methods):
        if method.endswith(" · paper"):
            assert methods[i - 1] == method.removesuffix(" · paper")
            assert methods[i + 1] == method.removesuffix(" · paper") + " · Δ"
    beyond = table.find_elements("css selector", "td.beyond")
    assert beyond and all(cell.text.endswith("!") for cell in beyond)
    assert beyond[0].value_of_css_property("font-weight") == "700"
    within = [c for c in table.find_elements("css selector", "tr.delta td:not(.label)") if c.text]
    assert any(
        not c.text.endswith("!") and "beyond" not in c.get_attribute("class") for c in within
    )
    notes = [p.text for p in browser.find_elements("css selector", "p.note")]
    assert notes[0].startswith("A Δ marked ! lies beyond the seed spread")
    assert notes[1].startswith("Average H (mean of H) is the mean of the per-dataset H")
    assert browser.find_element("css selector", "p.note code").text == (
        "leaderboard --average-h of-means"
    )
    images = browser.find_elements("css selector", "figure img")
    assert len(images) == 1
    assert browser.execute_script("return arguments[0].naturalWidth", images[0]) > 100
