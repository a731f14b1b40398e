"""What the browser tests share: a fresh `streamlit run app.py` server, headless
Chromium through Playwright, and helpers to wait for the app, visit pages and take
screenshots. Import the fixtures into a test module (``from browser_helpers import
browser, server``); each module gets its own server."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

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
# What shows that a page's figures have drawn: Plotly charts, or the Tune page's live
# histograms (an SVG inside the component's shadow root, which Playwright's CSS pierces).
DRAWN = {
    "data": ".js-plotly-plot",
    "tune": '[data-testid="tune-live-chart"] path',
    "explore": ".js-plotly-plot",
}


def free_port() -> int:
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


@contextlib.contextmanager
def app_server(
    home: Path, *, port: int | None = None, secrets: Path | None = None
) -> Iterator[str]:
    """`streamlit run app.py` on a free local port (or ``port``) with runs under ``home``
    and, when given, the secrets file ``secrets`` (sign-in); yields its URL once healthy
    and stops it on exit (bench/bench_tune_browser.py uses it too)."""
    port = port or free_port()
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
        *(["--secrets.files", str(secrets)] if secrets is not None else []),
    ]
    log = open(home / "server.log", "wb")  # noqa: SIM115 - closed in finally
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


def chromium_path() -> str | None:
    """Debian's Chromium ($SOARTLAB_CHROMIUM, else /usr/bin/chromium or on PATH)."""
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if chromium_path() is None:
        pytest.skip("Debian chromium is not installed")
    home = tmp_path_factory.mktemp("soartlab-home")
    with app_server(home) as url:
        yield url, home


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


def settle(page, timeout: float = 60_000) -> None:
    """Wait until the app has drawn and no script run is in progress."""
    page.wait_for_selector('[data-testid="stMain"]', timeout=timeout)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
        timeout=timeout,
    )
    page.wait_for_timeout(700)


def no_exception(page, name: str) -> None:
    count = page.locator('[data-testid="stException"]').count()
    assert count == 0, f"{name}: {page.locator('[data-testid=stException]').first.inner_text()}"


def visit(page, name: str) -> None:
    """Open a page through the sidebar, which keeps the browser session (and its state)."""
    nav = page.locator('[data-testid="stSidebarNav"]')
    nav.get_by_text(name.capitalize(), exact=True).click()
    settle(page)
    if name in DRAWN:
        page.wait_for_selector(DRAWN[name], timeout=60_000)
        page.wait_for_timeout(800)
    no_exception(page, name)


def screenshot(page, name: str) -> None:
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
    settle(page)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(size)
