"""The HTML leaderboard in a real headless browser (Debian's chromium, driven by selenium):
the tables render, clicking a header sorts, a method's paper and Δ rows stay under it, and
the page references nothing outside itself.

chromium and chromedriver are required (``.ci/run`` installs them; locally
``apt-get install chromium chromium-driver``): the test fails, never skips, without them.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from benchmark.leaderboard import sections
from benchmark.plots import plots
from benchmark.reference import load
from benchmark.webpage import page
from tests.test_leaderboard import TITLES, frame, golden_df
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


def test_tables_render_and_sort(browser, tmp_path: Path) -> None:
    df = golden_df()
    path = tmp_path / "leaderboard.html"
    path.write_text(page(sections(df, titles=TITLES), []), encoding="utf-8")
    browser.get(path.as_uri())

    tables = browser.find_elements("css selector", "table.sortable")
    headings = [h.text for h in browser.find_elements("tag name", "h2")]
    assert len(tables) == len(headings) == 4
    assert headings[0] == "few_shot (ViT-B-16, openai) · 16 shots"
    few_shot = tables[0]
    assert [th.text for th in few_shot.find_elements("tag name", "th")] == [
        "Method",
        "ImageNet",
        "Caltech101",
        "OxfordPets",
        "Average",
    ]
    assert column(few_shot, 0) == ["coop", "kgcoop", "zeroshot"]
    assert column(few_shot, 1) == ["62.1 ± 0.4", "63.4 ± 0.4", "58.4 ± 0.4"]

    imagenet = few_shot.find_elements("tag name", "th")[1]
    imagenet.click()
    assert column(few_shot, 0) == ["zeroshot", "coop", "kgcoop"]  # ascending
    assert imagenet.get_attribute("aria-sort") == "ascending"
    imagenet.click()
    assert column(few_shot, 0) == ["kgcoop", "coop", "zeroshot"]  # descending
    average = few_shot.find_elements("tag name", "th")[4]
    average.click()
    assert column(few_shot, 0) == ["zeroshot", "coop", "kgcoop"]  # the empty cell last
    few_shot.find_elements("tag name", "th")[0].click()
    assert column(few_shot, 0) == ["coop", "kgcoop", "zeroshot"]  # text columns sort too


def test_comparison_rows_move_with_their_method(browser, tmp_path: Path) -> None:
    df = frame(base_to_new_rows())
    path = tmp_path / "reference.html"
    figures = [(p.title, p.png()) for p in plots(df, TITLES)]
    path.write_text(page(sections(df, titles=TITLES, reference=load()), figures), encoding="utf-8")
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["'](?!data:)""", text)  # nothing outside the page
    browser.get(path.as_uri())

    [table] = browser.find_elements("css selector", "table.sortable")
    h = table.find_elements("tag name", "th")[4]
    h.click()
    h.click()  # descending H
    methods = column(table, 1)
    assert methods[:3] == ["gcscoop", "gcscoop · paper", "gcscoop · Δ"]
    for i, method in enumerate(methods):
        if method.endswith(" · paper"):
            assert methods[i - 1] == method.removesuffix(" · paper")
            assert methods[i + 1] == method.removesuffix(" · paper") + " · Δ"
    images = browser.find_elements("css selector", "figure img")
    assert len(images) == 1
    assert browser.execute_script("return arguments[0].naturalWidth", images[0]) > 100
