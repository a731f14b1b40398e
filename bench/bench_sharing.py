"""10. Sharing the machine: 1, 2 and 4 trainings at once, and the server idle.

Trainings are started as the Train page starts them — `soartlab.ui.jobs.TrainingJob` on
the demo set, threads of one process — without a browser. "Before": no queue limit and
every job on torch's default intra-op threads (what the app did); "after": the app's queue
(`soartlab.jobqueue`, limit and threads from this machine). A job's fair share of the
machine, when N start together, is N × (one job alone); the table gives each set's
slowest job and the whole set's time against it (≥ 1: at least its fair share). All
figures come from one run of this script; the load average (os.getloadavg, 1 min) is
noted beside each, as the machine is shared.

Idle: `streamlit run app.py` with one headless Chromium page open on the Home page; the
server process's CPU time (utime + stime, /proc) over ``IDLE_SECONDS``.

    .venv/bin/python bench/bench_sharing.py [--out bench/sharing.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

IDLE_SECONDS = 30
COUNTS = (1, 2, 4)
SETTINGS = {"epochs": 1, "pairs_per_epoch": 6000, "batch_size": 128, "device": "cpu"}


class DefaultThreadsQueue:
    """The app before the queue: every job starts at once on torch's default threads."""

    def __new__(cls, cores: int):
        from soartlab.jobqueue import JobQueue

        queue = JobQueue({"cpu": 1_000, "cuda": 0}, cores=cores)
        default = __import__("torch").get_num_threads()
        queue.threads = lambda pool="cpu": default  # type: ignore[method-assign]
        return queue


def trainings(n: int, queue, dataset, home: Path) -> dict:
    from soartlab.config import TrainConfig
    from soartlab.runs import RunStore
    from soartlab.ui.jobs import TrainingJob

    config = TrainConfig(**SETTINGS)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    jobs = [
        TrainingJob(dataset, config, store=RunStore(home), label=f"bench {i}", queue=queue).start()
        for i in range(n)
    ]
    ends: dict[int, float] = {}
    while len(ends) < n:
        for i, job in enumerate(jobs):
            if i not in ends and not job.is_running():
                ends[i] = time.perf_counter() - start
        time.sleep(0.05)
    ends = [ends[i] for i in range(n)]
    for job in jobs:
        snap = job.snapshot()
        assert snap.status == "done", (snap.status, snap.error)
    return {
        "jobs": n,
        "each_s": [round(e, 2) for e in ends],
        "all_s": round(max(ends), 2),
        "load": round((load_before + os.getloadavg()[0]) / 2, 1),
    }


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def streamlit_pid() -> int:
    """The `streamlit run` child of this process."""
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[1] == me and b"streamlit" in cmdline:
                return int(entry.name)
    raise RuntimeError("no streamlit server found")


def idle_cpu() -> dict:
    from browser_helpers import CHROMIUM_ARGS, app_server, chromium_path, settle
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as home, app_server(Path(home)) as url:
        pid = streamlit_pid()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(url)
            settle(page)
            time.sleep(5)  # first-visit work (demo set, charts) done
            load_before = os.getloadavg()[0]
            cpu0, t0 = process_cpu_seconds(pid), time.perf_counter()
            time.sleep(IDLE_SECONDS)
            cpu1, t1 = process_cpu_seconds(pid), time.perf_counter()
            browser.close()
    return {
        "seconds": round(t1 - t0, 1),
        "cpu_s": round(cpu1 - cpu0, 2),
        "core_share": round((cpu1 - cpu0) / (t1 - t0), 4),
        "load": round((load_before + os.getloadavg()[0]) / 2, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).with_name("sharing.json")))
    args = parser.parse_args()

    import torch

    from soartlab.demo import make_demo
    from soartlab.jobqueue import JobQueue, machine_cores

    cores = machine_cores()
    dataset = make_demo()
    result: dict = {
        "cores": cores,
        "torch_default_threads": torch.get_num_threads(),
        "settings": SETTINGS,
        "before": [],
        "after": [],
    }
    with tempfile.TemporaryDirectory() as home:
        trainings(1, JobQueue(cores=cores), dataset, Path(home))  # warm-up (imports, caches)
        for n in COUNTS:
            result["before"].append(trainings(n, DefaultThreadsQueue(cores), dataset, Path(home)))
            print("before", result["before"][-1], flush=True)
            queue = JobQueue(cores=cores)
            result["limits"] = queue.limits
            result["after"].append(trainings(n, queue, dataset, Path(home)))
            print("after", result["after"][-1], flush=True)
    result["idle"] = idle_cpu()
    print("idle", result["idle"], flush=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))


def markdown(result: dict) -> str:
    lines = [
        f"{result['cores']} cores, torch default {result['torch_default_threads']} threads; "
        f"queue limits {result['limits']}; each job: demo set, {result['settings']}.",
        "",
        "| jobs at once | way | one job alone (s) | slowest job (s) | all done (s) | "
        "fair share ÷ slowest | fair share ÷ all done | load (1 min) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for way in ("before", "after"):
        alone = result[way][0]["all_s"]
        for row in result[way]:
            fair = row["jobs"] * alone
            lines.append(
                f"| {row['jobs']} | {way} | {alone:.1f} | {max(row['each_s']):.1f} | "
                f"{row['all_s']:.1f} | {fair / max(row['each_s']):.2f} | "
                f"{fair / row['all_s']:.2f} | {row['load']} |"
            )
    idle = result["idle"]
    lines += [
        "",
        f"Server idle with one page open: {idle['cpu_s']} s of CPU in {idle['seconds']} s = "
        f"{idle['core_share']:.1%} of a core (load {idle['load']}).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
