"""The interface in Japanese, in a real browser: at ``?lang=ja`` (the browser itself asking
for English) walk Data → Train (a very short run) → Explore → Predict and find no English
words left in what the page shows, other than the data's own names and a few acronyms;
then the sidebar switch turns the interface English (and the URL keeps it); a browser
that asks for Japanese gets it without ``?lang=``.

With ``SOARTLAB_I18N_SHOTS=<folder>`` it also saves a full-page screenshot of each page.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from browser_helpers import browser, no_exception, server, settle

from soartlab.ui.i18n import translated

pytestmark = pytest.mark.browser
__all__ = ["browser", "server"]  # fixtures, used by name

SHOTS = os.environ.get("SOARTLAB_I18N_SHOTS")
# Words that stay as they are in Japanese text: names, acronyms, units, file types.
ALLOWED = {
    "soart", "soart3", "lab", "pca", "csv", "tsv", "npz", "zip", "parquet", "png", "jpeg",
    "bmp", "gpu", "cpu", "cuda", "knn", "roc", "auc", "nan", "pth", "json", "safetensors",
    "english",  # the language switch offers English by its own name
    "max",  # the transform's formula, d = max(…)
    "mlp", "cnn", "xlsx", "excel", "utf", "bom", "ppm",  # network names, file formats, units
}  # fmt: skip
# The demo set's class names and the data set's name are data, not interface.
DEMO_CLASSES = {"good", "burr", "crack", "dent", "edge_chip", "missing_hole", "scratch", "stain"}
ENGLISH_WORD = re.compile(r"[A-Za-z][A-Za-z_]{2,}")
# Left out of the check: Streamlit's own widget texts ("Drag and drop file here", "Browse
# files"), drawn by its frontend, which has no Japanese, and Material icons, whose names
# ("folder_open") are text that the icon font draws as a picture.
STREAMLIT_CHROME = ('[data-testid="stFileUploaderDropzone"]', '[data-testid="stIconMaterial"]')


def ja(text: str) -> str:
    return translated(text, "ja")


def english_words(page, data: tuple[str, ...] = ()) -> list[str]:
    """ASCII words of three letters or more in the sidebar and the page, less data names
    and the texts in ``data`` (a folder's path)."""
    text = page.evaluate(
        """(chrome) => {
            const hidden = [];
            for (const selector of chrome)
                for (const el of document.querySelectorAll(selector)) {
                    hidden.push([el, el.style.visibility]);
                    el.style.visibility = 'hidden';
                }
            const parts = ['stSidebar', 'stMain'].map(
                (id) => document.querySelector(`[data-testid="${id}"]`)?.innerText || '');
            for (const [el, visibility] of hidden) el.style.visibility = visibility;
            return parts.join('\\n');
        }""",
        list(STREAMLIT_CHROME),
    )
    for shown in data:
        text = text.replace(shown, " ")
    # a run id's hex letters ("…-4bbe3f") read as a word: ids are data
    text = re.sub(r"\b\d{8}-\d{6}-[0-9a-f]{6}\b", " ", text)
    allowed = ALLOWED | DEMO_CLASSES
    words = [w for w in ENGLISH_WORD.findall(text) if w.lower() not in allowed]
    # run ids (20261130-181500-a1b2c3) and file names (soartlab-<id>.pth) are data too
    return [w for w in words if not re.fullmatch(r"[0-9a-f]{6}", w)]


def visit(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(ja(title), exact=True).click()
    settle(page)
    no_exception(page, title)


def shoot(page, name: str) -> None:
    if not SHOTS:
        return
    folder = Path(SHOTS)
    folder.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height + 40)})
    page.wait_for_timeout(1500)
    settle(page)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    page.set_viewport_size(size)


def check_japanese(page, name: str, data: tuple[str, ...] = ()) -> None:
    left = english_words(page, data)
    assert not left, f"{name}: English left at ?lang=ja: {sorted(set(left))}"
    shoot(page, name)


def test_japanese_walk_and_the_language_switch(server, browser):
    url, home = server
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US")
    page = context.new_page()
    try:
        page.goto(f"{url}/?lang=ja")
        page.get_by_role("heading", name=ja("This session")).wait_for(timeout=120_000)
        settle(page)
        check_japanese(page, "home")

        visit(page, "Data")
        page.get_by_role("button", name=ja("Use the demo set")).click()
        settle(page)
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        check_japanese(page, "data")

        if SHOTS:  # the Tune page computes pair distances: only for the screenshots
            visit(page, "Tune")
            page.wait_for_selector('[data-testid="tune-live-chart"] path', timeout=60_000)
            check_japanese(page, "tune")

        visit(page, "Train")
        # One short epoch: the run's fixed costs (the transform for the data, baselines,
        # held-out figures) dominate; the wait is generous for a loaded CI machine.
        for label, value in ((ja("Epochs"), "1"), (ja("Pairs per epoch"), "512")):
            field = page.get_by_label(label, exact=True)
            field.fill(value)
            field.press("Tab")
        page.get_by_role("button", name=ja("Start training")).click()
        page.get_by_role("button", name=ja("Download model (.pth)")).wait_for(timeout=480_000)
        settle(page)
        no_exception(page, "train")
        check_japanese(page, "train")

        visit(page, "Explore")
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        check_japanese(page, "explore")

        visit(page, "Predict")
        page.get_by_text(ja("The held-out part of the session's data")).click()
        download = ja("Download {what} (.csv)").format(what=ja("predictions"))
        page.get_by_role("button", name=download).wait_for(timeout=60_000)
        settle(page)
        no_exception(page, "predict")
        check_japanese(page, "predict")
        assert ja("pass") in page.locator('[data-testid="stMain"]').inner_text()

        if SHOTS:
            visit(page, "Runs")
            check_japanese(page, "runs", data=(str(home),))

        # The switch: English at once, and in the URL so that a refresh keeps it.
        sidebar = page.locator('[data-testid="stSidebar"]')
        sidebar.get_by_role("radio", name="English").click()
        settle(page)
        nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
        assert "Predict" in nav and "Explore" in nav, nav
        assert "lang=en" in page.url, page.url
        page.reload()
        settle(page)
        assert "Predict" in page.locator('[data-testid="stSidebarNav"]').inner_text()
        no_exception(page, "after the switch")
    finally:
        context.close()

    # With no choice in the URL or the session, the browser's language decides.
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="ja-JP")
    try:
        page = context.new_page()
        page.goto(url)
        nav = page.locator('[data-testid="stSidebarNav"]')
        nav.get_by_text(ja("Home"), exact=True).wait_for(timeout=60_000)
        assert "lang=" not in page.url, page.url
    finally:
        context.close()
