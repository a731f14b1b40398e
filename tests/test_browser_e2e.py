"""End to end in a real browser: `streamlit run app.py` driven by headless Chromium.

Visits every page, trains briefly, downloads the checkpoint and saves a full-page
screenshot of each page to docs/screenshots/<page>.png.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from browser_helpers import PAGES, browser, no_exception, screenshot, server, settle, visit

pytestmark = pytest.mark.browser
__all__ = ["browser", "server"]  # fixtures, used by name


def test_a_first_visit_at_a_page_url_enters_through_app(server, browser):
    """Right after the server starts, a bookmarked page URL shows the app's navigation and
    the demo data (not the pages folder's file names and an empty page). Runs first in
    this module: only the first script run of a fresh server can take the wrong path."""
    url, _ = server
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        page.goto(f"{url}/tune")
        page.get_by_role("heading", name="Tune the distance").wait_for(timeout=120_000)
        settle(page)
        nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
        assert "Explore" in nav and "Runs" in nav and "app" not in nav.split(), nav
        assert "/tune" in page.url
        from playwright.sync_api import expect

        expect(page.locator('[data-testid="stSidebar"]')).to_contain_text("demo set")
        no_exception(page, "tune")
    finally:
        context.close()


def click_a_confusion_cell(page) -> None:
    """A click on a cell of the confusion matrix picks that cell for "Samples in a cell",
    in a real browser (a corner cell other than the one shown: good → stain, or
    stain → good)."""
    heatmap = page.locator(".st-key-explore_confusion .js-plotly-plot")
    heatmap.scroll_into_view_if_needed()  # a click lands only inside the viewport
    box = heatmap.locator(".nsewdrag").first.bounding_box()
    chosen = page.locator('[data-testid="stSelectbox"]').filter(has_text="True → predicted")
    value = chosen.locator("input").first
    before = value.get_attribute("value")
    k = 8  # classes of the demo set: good first, stain last
    row, column, name = (0, k - 1, "good → stain")
    if before.startswith(name):
        row, column, name = (k - 1, 0, "stain → good")
    x = box["x"] + box["width"] * (column + 0.5) / k
    y = box["y"] + box["height"] * (row + 0.5) / k
    page.mouse.click(x, y)
    settle(page)
    for _ in range(60):  # the selection's rerun may land after settle on a loaded machine
        picked = value.get_attribute("value")
        if picked.startswith(name):
            break
        page.wait_for_timeout(500)
    assert picked.startswith(name), (before, picked)
    no_exception(page, "explore")


def sidebar_follows_a_data_change(page, tmp_path) -> None:
    """The sidebar's "This session" panel is current in the run that changed the data
    (it lagged one rerun behind): upload a lot, then go back to the demo set."""
    from playwright.sync_api import expect

    from soartlab.demo import write_demo

    lot = tmp_path / "lot7.csv"
    write_demo(lot, n_samples=80, seed=3)
    visit(page, "data")
    sidebar = page.locator('[data-testid="stSidebar"]')
    page.locator('input[type="file"]').first.set_input_files(str(lot))
    page.get_by_text("lot7.csv: 80 samples").wait_for(timeout=60_000)
    # no further click or rerun: the run that loaded the file drew the panel
    expect(sidebar).to_contain_text("Data · lot7.csv", timeout=30_000)
    page.get_by_role("button", name="Use the demo set").click()
    expect(sidebar).to_contain_text("Data · demo set", timeout=30_000)
    settle(page)


def test_every_page_trains_and_downloads(server, browser, tmp_path):
    import torch

    url, _ = server
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page = context.new_page()
    try:
        page.goto(url)
        settle(page)
        sidebar_follows_a_data_change(page, tmp_path)
        for name in PAGES[:3]:
            visit(page, name)
            screenshot(page, name)

        # Train briefly (fewer epochs than the defaults), yet long enough that the
        # screenshots of Train, Explore and Predict show a model that has learnt.
        visit(page, "train")
        for label, value in (("Epochs", "2"), ("Pairs per epoch", "10000")):
            field = page.get_by_label(label, exact=True)
            field.fill(value)
            field.press("Tab")  # Enter would submit the form before every field is set
        page.get_by_role("button", name="Start training").click()
        download_button = page.get_by_role("button", name="Download model (.pth)")
        # Generous: a loaded CI machine can be several times slower than an idle one.
        download_button.wait_for(timeout=480_000)
        settle(page)
        no_exception(page, "train")
        screenshot(page, "train")
        with page.expect_download(timeout=60_000) as info:
            download_button.click()
        state_dict = torch.load(io.BytesIO(Path(info.value.path()).read_bytes()), weights_only=True)
        assert "embedding_net.linear1.weight" in state_dict
        assert state_dict["embedding_net.final.weight"].shape == (128, 256)

        for name in PAGES[4:]:
            visit(page, name)
            if name == "explore":
                click_a_confusion_cell(page)
            if name == "predict":
                page.get_by_text("The held-out part of the session's data").click()
                page.get_by_role("button", name="Download predictions (.csv)").wait_for(
                    timeout=60_000
                )
                settle(page)
                no_exception(page, name)
            screenshot(page, name)
        # And the pages seen before training, now with a model.
        for name in ("home", "tune"):
            visit(page, name)
    finally:
        context.close()


def test_a_cnn_run_trains_from_the_train_page(server, browser):
    """Choose the cnn on the Train page, train it briefly, and see its curves (the
    validation accuracy) and its result; the .pth holds the conv net's weights."""
    import torch
    from playwright.sync_api import expect

    url, _ = server
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    try:
        page.goto(url)
        settle(page)
        visit(page, "train")
        page.locator('[data-testid="stSelectbox"]').filter(has_text="Network").click()
        page.get_by_role("option", name="cnn: convolutional, defects anywhere").click()
        for label, value in (("Epochs", "2"), ("Pairs per epoch", "256")):
            field = page.get_by_label(label, exact=True)
            field.fill(value)
            field.press("Tab")
        page.get_by_role("button", name="Start training").click()
        expect(page.get_by_text("Training finished in")).to_be_visible(timeout=240_000)
        settle(page)
        no_exception(page, "train (cnn)")
        curves = page.locator(".js-plotly-plot").filter(has_text="val accuracy")
        expect(curves.first).to_be_visible()
        expect(page.get_by_text("Finished: 2 epoch(s)")).to_be_visible()
        with page.expect_download(timeout=60_000) as info:
            page.get_by_role("button", name="Download model (.pth)").click()
        state_dict = torch.load(io.BytesIO(Path(info.value.path()).read_bytes()), weights_only=True)
        assert "embedding_net.blocks.0.0.weight" in state_dict
        assert "embedding_net.linear1.weight" not in state_dict
    finally:
        context.close()
