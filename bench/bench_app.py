"""6. The app: time from `streamlit run app.py --server.headless true --server.address
127.0.0.1` to a healthy `/_stcore/health`, and each page's render time with
`streamlit.testing.v1.AppTest` on the demo set (first run loads the demo set; each page
is then timed on a switch to it, median of three). Runs in a temporary SOARTLAB_HOME.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from common import ROOT

PAGES = (
    "pages/home.py",
    "pages/data.py",
    "pages/tune.py",
    "pages/train.py",
    "pages/explore.py",
    "pages/predict.py",
    "pages/runs.py",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def startup_seconds(home: str, timeout: float = 120.0) -> float | None:
    port = _free_port()
    streamlit = Path(ROOT, ".venv", "bin", "streamlit")
    command = [str(streamlit) if streamlit.exists() else "streamlit", "run", "app.py"]
    command += ["--server.headless", "true", "--server.address", "127.0.0.1"]
    command += ["--server.port", str(port), "--browser.gatherUsageStats", "false"]
    env = dict(os.environ, SOARTLAB_HOME=home)
    start = time.perf_counter()
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while time.perf_counter() - start < timeout:
            try:
                url = f"http://127.0.0.1:{port}/_stcore/health"
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200 and response.read().strip() == b"ok":
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
        return None
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def page_seconds() -> dict:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    start = time.perf_counter()
    at.run()
    first = time.perf_counter() - start
    pages = {"first run (loads demo set)": first}
    for page in PAGES:
        times = []
        for _ in range(3):
            at.switch_page("pages/home.py" if page != "pages/home.py" else "pages/runs.py").run()
            start = time.perf_counter()
            at.switch_page(page).run()
            times.append(time.perf_counter() - start)
        pages[page] = sorted(times)[1]
        problems = [str(e.value) for e in at.exception] + [str(e.value) for e in at.error]
        if problems:
            pages[page] = f"{sorted(times)[1] * 1e3:.1f} ms, but it showed: {problems[0][:160]}"
    return pages


def run() -> dict:
    if not (ROOT / "app.py").exists() or not (ROOT / "pages").is_dir():
        return {"skipped": "app.py or pages/ not present"}
    with tempfile.TemporaryDirectory() as home:
        os.environ["SOARTLAB_HOME"] = home
        return {"startup_seconds": startup_seconds(home), "pages": page_seconds()}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
