"""In a real browser: a refresh mid-training re-attaches to the job the server keeps for the
workspace in the address (?ws=), with its progress and Stop."""

from __future__ import annotations

import re

import pytest
from browser_helpers import browser, no_exception, server, settle, visit

pytestmark = pytest.mark.browser
__all__ = ["browser", "server"]  # fixtures, used by name


def workspace_of(url: str) -> str:
    found = re.search(r"[?&]ws=([A-Za-z0-9_-]{16})", url)
    assert found, url
    return found.group(1)


def test_a_refresh_mid_training_reattaches_to_the_job(server, browser):
    from playwright.sync_api import expect

    url, _ = server
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        page.goto(url)
        settle(page)
        page.wait_for_url(re.compile(r"ws="), timeout=30_000)
        visit(page, "train")
        ws = workspace_of(page.url)
        # Long enough that the refresh lands mid-training; stopped below.
        for label, value in (("Epochs", "50"), ("Pairs per epoch", "2000")):
            field = page.get_by_label(label, exact=True)
            field.fill(value)
            field.press("Tab")
        run_name = page.get_by_label("Run name (optional)")
        run_name.fill("kept across refresh")
        run_name.press("Tab")
        page.get_by_role("button", name="Start training").click()
        stop = page.get_by_role("button", name="Stop")
        stop.wait_for(timeout=60_000)
        progress = page.locator('[data-testid="stProgress"]')
        expect(progress).to_contain_text(re.compile(r"Epoch \d+/50|Preparing"), timeout=60_000)

        page.reload()
        settle(page)
        assert workspace_of(page.url) == ws and "/train" in page.url
        # The new browser session shows the same job: progress moving, Stop there.
        expect(page.get_by_role("button", name="Stop")).to_be_visible(timeout=30_000)
        expect(progress).to_contain_text(re.compile(r"Epoch \d+/50|Preparing"), timeout=30_000)
        expect(page.get_by_label("Run name (optional)")).to_have_value("kept across refresh")
        no_exception(page, "train after refresh")

        page.get_by_role("button", name="Stop").click()
        # Stop reaches the server's job: it says so at once and ends at its next step
        # (or is already over when the machine is quick).
        expect(progress).to_contain_text(
            re.compile(r"Stopping at the next step|Stopped \(stopped by the user"), timeout=30_000
        )
        no_exception(page, "train stopped")
        # A new tab without the address's workspace is another workspace: no job there.
        other = context.new_page()
        other.goto(f"{url}/train")
        other.wait_for_url(re.compile(r"ws="), timeout=30_000)
        settle(other)
        assert workspace_of(other.url) != ws
        assert other.get_by_role("button", name="Stop").count() == 0
    finally:
        context.close()
