"""End to end in a real browser: `streamlit run app.py` driven by headless Chromium.

Visits every page, trains briefly, downloads the checkpoint and saves a full-page
screenshot of each page to docs/screenshots/<page>.png.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("SOARTLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGES = ["home", "data", "tune", "train", "explore", "predict", "runs"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError("streamlit did not become healthy")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip("Debian chromium is not installed")
    home = tmp_path_factory.mktemp("soartlab-home")
    port = _free_port()
    env = {**os.environ, "SOARTLAB_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
    ]
    log = open(home / "server.log", "wb")  # noqa: SIM115 - closed in finally
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process)
        yield url, home
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
        instance = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


def _settle(page, timeout: float = 60_000) -> None:
    """Wait until the app has drawn and no script run is in progress."""
    page.wait_for_selector('[data-testid="stMain"]', timeout=timeout)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
        timeout=timeout,
    )
    page.wait_for_timeout(700)


def _no_exception(page, name: str) -> None:
    count = page.locator('[data-testid="stException"]').count()
    assert count == 0, f"{name}: {page.locator('[data-testid=stException]').first.inner_text()}"


def _visit(page, name: str) -> None:
    """Open a page through the sidebar, which keeps the browser session (and its state)."""
    nav = page.locator('[data-testid="stSidebarNav"]')
    nav.get_by_text(name.capitalize(), exact=True).click()
    _settle(page)
    if name in ("data", "tune", "explore"):
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        page.wait_for_timeout(800)
    _no_exception(page, name)


def _screenshot(page, name: str) -> None:
    """A full-page screenshot. Streamlit scrolls inside its main container, not the
    document, so the viewport is grown to the content's height first."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    height = page.evaluate(
        '() => Math.max(...[...document.querySelectorAll(\'[data-testid="stMain"], '
        '[data-testid="stMainBlockContainer"]\')].map(e => e.scrollHeight))'
    )
    page.set_viewport_size(
        {"width": size["width"], "height": max(size["height"], int(height) + 40)}
    )
    page.wait_for_timeout(1500)  # tables and charts redraw for the new size
    _settle(page)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(size)


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
        _settle(page)
        nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
        assert "Explore" in nav and "Runs" in nav and "app" not in nav.split(), nav
        assert "/tune" in page.url
        sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
        assert "demo set" in sidebar, sidebar
        _no_exception(page, "tune")
    finally:
        context.close()


def test_every_page_trains_and_downloads(server, browser):
    import torch

    url, _ = server
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page = context.new_page()
    try:
        page.goto(url)
        _settle(page)
        for name in PAGES[:3]:
            _visit(page, name)
            _screenshot(page, name)

        # Train briefly (fewer epochs than the defaults), yet long enough that the
        # screenshots of Train, Explore and Predict show a model that has learnt.
        _visit(page, "train")
        for label, value in (("Epochs", "2"), ("Pairs per epoch", "10000")):
            field = page.get_by_label(label, exact=True)
            field.fill(value)
            field.press("Tab")  # Enter would submit the form before every field is set
        page.get_by_role("button", name="Start training").click()
        download_button = page.get_by_role("button", name="Download model (.pth)")
        # Generous: a loaded CI machine can be several times slower than an idle one.
        download_button.wait_for(timeout=480_000)
        _settle(page)
        _no_exception(page, "train")
        _screenshot(page, "train")
        with page.expect_download(timeout=60_000) as info:
            download_button.click()
        state_dict = torch.load(io.BytesIO(Path(info.value.path()).read_bytes()), weights_only=True)
        assert "embedding_net.linear1.weight" in state_dict
        assert state_dict["embedding_net.final.weight"].shape == (128, 256)

        for name in PAGES[4:]:
            _visit(page, name)
            if name == "predict":
                page.get_by_text("The held-out part of the session's data").click()
                page.get_by_role("button", name="Download predictions (.csv)").wait_for(
                    timeout=60_000
                )
                _settle(page)
                _no_exception(page, name)
            _screenshot(page, name)
        # And the pages seen before training, now with a model.
        for name in ("home", "tune"):
            _visit(page, name)
    finally:
        context.close()
