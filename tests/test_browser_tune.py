"""The tuning loop in a real browser: Tune → Suggest → Preview → Use for training → Train
→ Explore, checking the figures on screen. Saves docs/screenshots/tune.png (README).

The live histograms are a Streamlit component (JavaScript), which AppTest cannot run:
this is where the redraw while dragging and keyboard stepping is tested.
"""

from __future__ import annotations

import re
import time

import pytest
from browser_helpers import browser, no_exception, screenshot, server, settle, visit

from soartlab.ui.tune_live import SETTLE_MS

pytestmark = pytest.mark.browser
__all__ = ["browser", "server"]  # fixtures, used by name

CHART = '[data-testid="tune-live-chart"]'
AFTER_BARS = '[data-testid="tune-live-after"] path'
PREVIEW_STEPS = "40"


def _metric(page, label: str) -> str:
    """The value shown under a metric's label."""
    metric = page.locator('[data-testid="stMetric"]').filter(
        has=page.get_by_text(label, exact=True)
    )
    return metric.locator('[data-testid="stMetricValue"]').first.inner_text()


def _values(page) -> tuple[float, float, float]:
    text = page.locator(CHART).get_attribute("data-values")
    return tuple(float(v) for v in text.split(","))


def _after_bars(page) -> list[str]:
    return [p.get_attribute("d") for p in page.locator(AFTER_BARS).all()]


def test_tune_suggest_preview_train_explore(server, browser):
    url, _ = server
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    sent: list[str] = []  # messages to the server, to tell a redraw in the browser
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append("frame")))
    try:
        page.goto(url)
        settle(page)
        visit(page, "tune")
        assert "untrained network for seed 0" in page.get_by_text("Distances on").inner_text()
        # The sliders start where Train starts when nothing is stored: on the demo set the
        # article's values, under which the loss learns there (tuning.default_transform).
        assert _values(page) == (0.5, -0.25, 0.0)
        page.get_by_role("button", name="Suggest").click()
        settle(page)
        suggested = _values(page)
        assert suggested != (0.5, -0.25, 0.0)
        page.get_by_role("button", name="Article's values").click()
        settle(page)
        assert _values(page) == (0.5, -0.25, 0.0)
        loss_before = _metric(page, "Loss now")

        # A keyboard step redraws the after histogram in the browser: nothing is sent to
        # the server before the chart has changed.
        bars = _after_bars(page)
        page.locator('[data-testid="tune-live-offset"]').focus()
        sent.clear()
        page.keyboard.press("ArrowRight")
        deadline = time.monotonic() + 2
        while _after_bars(page) == bars and time.monotonic() < deadline:
            pass
        assert _after_bars(page) != bars and not sent, "redrawn before any round trip"
        # Dragging: the values and the bars follow the mouse while the button is down.
        slider = page.locator('[data-testid="tune-live-scale"]').bounding_box()
        y = slider["y"] + slider["height"] / 2
        page.mouse.move(slider["x"] + slider["width"] * 0.1, y)
        page.mouse.down()
        seen = set()
        for fraction in (0.2, 0.3, 0.4):
            page.mouse.move(slider["x"] + slider["width"] * fraction, y, steps=2)
            seen.add(tuple(_after_bars(page)))
        page.mouse.up()
        assert len(seen) == 3, "the after histogram changes while dragging"
        # Once the user stops, the values reach Python and the loss's view follows.
        page.wait_for_timeout(SETTLE_MS + 300)
        settle(page)
        loss_moved = _metric(page, "Loss now")
        assert loss_moved != loss_before, "the loss's view follows the sliders"

        page.get_by_role("button", name="Suggest").click()
        settle(page)
        assert _values(page) == suggested
        assert _metric(page, "Pulled in") != "0.0%" and _metric(page, "Pushed out") != "0.0%"
        no_exception(page, "tune")

        steps = page.get_by_role("spinbutton", name="Preview steps")
        steps.fill(PREVIEW_STEPS)
        steps.press("Tab")
        settle(page)
        page.get_by_role("button", name="Preview", exact=True).click()
        page.get_by_text("ROC AUC after preview").wait_for(timeout=150_000)
        settle(page)
        auc = float(_metric(page, "ROC AUC after preview"))
        assert 0.0 <= auc <= 1.0
        assert _metric(page, "Steps") == PREVIEW_STEPS
        page.get_by_role("button", name="Use for training").click()
        page.get_by_text("Stored for training.").wait_for()
        no_exception(page, "tune")
        screenshot(page, "tune")

        # Train starts with the suggested values.
        visit(page, "train")
        scale, offset, floor = suggested
        caption = page.get_by_text(re.compile(r"^Transform: scale")).inner_text()
        assert f"scale {scale:.3g}, offset {offset:.3g}, floor {floor:.3g}" in caption
        for label, value in (("Epochs", "2"), ("Pairs per epoch", "5000")):
            field = page.get_by_label(label, exact=True)
            field.fill(value)
            field.press("Tab")
        page.get_by_role("button", name="Start training").click()
        page.get_by_role("button", name="Download model (.pth)").wait_for(timeout=240_000)
        settle(page)
        no_exception(page, "train")
        visit(page, "explore")
    finally:
        context.close()
