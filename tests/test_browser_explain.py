"""In a real browser: a click on a confusion-matrix cell on Explore shows its parts'
heatmaps (images drawn by the app, not Plotly) beside their nearest references."""

from __future__ import annotations

import shutil

import pytest
from browser_helpers import browser, server, settle, visit  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


def test_a_clicked_confusion_cell_shows_heatmaps(server, browser, tiny_run):  # noqa: F811
    url, home = server
    shutil.copytree(tiny_run.run.path, home / tiny_run.run.run_id)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        page.goto(url)
        settle(page)
        visit(page, "runs")
        page.get_by_role("button", name="Make it the current model").click()
        settle(page)
        visit(page, "explore")
        # the largest mistake of the run: a cell with parts behind it
        confusion = tiny_run.record.metrics["confusion"]
        k = len(confusion)
        _, row, column = max((confusion[t][p], t, p) for t in range(k) for p in range(k) if t != p)
        heatmap = page.locator(".st-key-explore_confusion .js-plotly-plot")
        heatmap.scroll_into_view_if_needed()  # a click lands only inside the viewport
        box = heatmap.locator(".nsewdrag").first.bounding_box()
        page.mouse.click(
            box["x"] + box["width"] * (column + 0.5) / k,
            box["y"] + box["height"] * (row + 0.5) / k,
        )
        settle(page)
        names = tiny_run.record.label_names
        chosen = page.locator('[data-testid="stSelectbox"]').filter(has_text="True → predicted")
        picked = chosen.locator("input").first.get_attribute("value")
        assert picked.startswith(f"{names[row]} → {names[column]}"), picked
        images = page.locator('[data-testid="stImage"] img')
        images.first.wait_for(timeout=120_000)
        settle(page)  # every heatmap and its button drawn, not only the first
        assert images.count() >= 1
        width = images.first.evaluate("img => img.naturalWidth")
        assert width > 4 * 39 * 4  # four tiles of the 39-pixel-wide part, upscaled
        assert page.get_by_text("nearest good: training row").count() >= 1
        assert page.get_by_role("button", name="Download PNG").count() == images.count()
    finally:
        context.close()
