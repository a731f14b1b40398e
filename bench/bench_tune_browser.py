"""8. A slider step as the browser sees it: key press to changed chart, in headless
Chromium (Playwright) on a fresh `streamlit run app.py`, demo set, 2,000 pairs.

For each step the page records the key event's own time stamp (`event.timeStamp`, when
the browser received the key) and the time just after the first frame rendered once the
after-tune chart changed (a MutationObserver, then a task queued from that frame's
`requestAnimationFrame` callback): the changed chart is on screen by then. Measured on the live sliders (the component, redrawn in the
browser) and, for comparison, on the server-drawn path ("Live in the browser" off:
`st.slider` → fragment rerun → Plotly figure).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

from common import ROOT

sys.path.insert(0, str(ROOT / "tests"))
from browser_helpers import CHROMIUM_ARGS, app_server, chromium_path, settle  # noqa: E402

LIVE_STEPS = 30
SERVER_STEPS = 12

# Installed on the element the key goes to; watches `target` (mutations inside a shadow
# root reach only an observer inside it) until `probe()` returns something else than at
# the key press: the chart has changed. Each step leaves [key time, frame time] in
# window.__steps.
WATCH = """([input, target, probeSource]) => {
  const probe = new Function("target", probeSource);
  window.__steps = [];
  window.__down = null;
  input.addEventListener("keydown", (event) => {
    window.__down = event.timeStamp;
    window.__before = probe(target);
  });
  new MutationObserver(() => {
    if (window.__down === null || probe(target) === window.__before) return;
    const down = window.__down;
    window.__down = null;
    // A task queued from the next frame's callback runs once that frame has rendered.
    requestAnimationFrame(() =>
      setTimeout(() => window.__steps.push([down, performance.now()]), 0)
    );
  }).observe(target, { childList: true, subtree: true, attributes: true });
}"""
# What changes with the chart: the live after panel's first bars path; the server-drawn
# figure's after-tune matched trace (Plotly keeps the figure's data on its element).
LIVE_PROBE = "return target.querySelector('path')?.getAttribute('d');"
SERVER_PROBE = "const gd = document.querySelector('.js-plotly-plot'); return gd?.data?.[2];"


def _steps(page, input_locator, target, probe: str, count: int, pause_ms: int) -> list[float]:
    """Press arrow keys ``count`` times on ``input_locator``; ms from key to frame each."""
    page.evaluate(WATCH, [input_locator.element_handle(), target, probe])
    input_locator.focus()
    for k in range(count):
        page.keyboard.press("ArrowLeft" if k % 2 else "ArrowRight")
        page.wait_for_function("(n) => window.__steps.length > n", arg=k, timeout=30_000)
        page.wait_for_timeout(pause_ms)
    return [frame - down for down, frame in page.evaluate("window.__steps")]


def _summary(times: list[float]) -> dict:
    ordered = sorted(times)
    return {
        "steps": len(times),
        "median_ms": statistics.median(times),
        "p90_ms": ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))],
        "min_ms": ordered[0],
        "max_ms": ordered[-1],
    }


def run() -> dict:
    from playwright.sync_api import sync_playwright

    if chromium_path() is None:
        return {"error": "Debian chromium is not installed (make browser)"}
    with tempfile.TemporaryDirectory() as home, app_server(Path(home)) as url:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url)
            settle(page)
            page.locator('[data-testid="stSidebarNav"]').get_by_text("Tune", exact=True).click()
            settle(page)
            page.wait_for_selector('[data-testid="tune-live-after"] path', timeout=120_000)
            live = _steps(
                page,
                page.locator('[data-testid="tune-live-offset"]'),
                page.locator('[data-testid="tune-live-after"]').element_handle(),
                LIVE_PROBE,
                LIVE_STEPS,
                pause_ms=60,
            )
            # The server-drawn path: switch "Live in the browser" off.
            page.get_by_text("Live in the browser").click()
            settle(page)
            page.wait_for_selector(".js-plotly-plot", timeout=120_000)
            server = _steps(
                page,
                page.get_by_role("slider", name="Offset"),
                page.locator("body").element_handle(),
                SERVER_PROBE,
                SERVER_STEPS,
                pause_ms=600,
            )
            browser.close()
    return {"live": _summary(live), "server": _summary(server), "pairs": 2000}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
