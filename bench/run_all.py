"""Run every benchmark and rewrite BENCHMARKS.md and bench/growth.png.

    make bench        (or: .venv/bin/python bench/run_all.py)

Set BENCH_THREADS to pin torch's intra-op threads (default: torch's own choice).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import report  # noqa: E402
import torch  # noqa: E402
from common import ROOT, demo_arrays, machine  # noqa: E402

N_DEMO = 25_000


def _bench(name: str):
    """Import a benchmark module when it runs, so one whose imports fail is reported
    like any other failure."""
    return importlib.import_module(name)


def attempt(name: str, fn, results: dict):
    print(f"[bench] {name} …", flush=True)
    start = time.perf_counter()
    try:
        value = fn()
    except Exception:  # a failing benchmark is reported, the others still run
        results[name] = {"error": traceback.format_exc(limit=4)}
        print(results[name]["error"], flush=True)
        value = None
    print(f"[bench] {name} done in {time.perf_counter() - start:.1f} s", flush=True)
    return value


@torch.no_grad()
def embed_all(model, images: np.ndarray) -> np.ndarray:
    model.eval()
    flat = torch.from_numpy(images.reshape(len(images), -1))
    return torch.cat([model.get_embedding(b) for b in flat.split(2048)]).numpy()


def main() -> None:
    threads_note = "torch default"
    if os.environ.get("BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
        threads_note = "BENCH_THREADS"
    elif os.getloadavg()[0] > (os.cpu_count() or 1) - 0.5:
        # On a machine already busy, every multi-threaded torch op waits for all its
        # threads to be scheduled; one thread per op is then several times faster.
        torch.set_num_threads(1)
        threads_note = (
            f"1: the machine was busy (load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
        )
    started = time.perf_counter()
    results: dict = {"machine": machine()}
    results["machine"]["threads_note"] = threads_note
    demo = attempt("demo_data", lambda: demo_arrays(N_DEMO, seed=1), results)
    images, labels = demo if demo else (None, None)
    results["soart3"] = attempt("soart3", _bench("bench_soart3").run, results)
    results["slider"] = attempt("slider", _bench("bench_slider").run, results)
    model = None
    if images is not None:
        trained = attempt(
            "training", lambda: _bench("bench_training").run(images[:5000], labels[:5000]), results
        )
        if trained:
            results["training"], model = trained
        results["architectures"] = attempt(
            "architectures",
            lambda: _bench("bench_architectures").run(images[:3000], labels[:3000]),
            results,
        )
        results["histogram"] = attempt(
            "histogram", lambda: _bench("bench_histogram").run(images, labels, model), results
        )
        if model is not None:
            embeddings = embed_all(model, images)
            results["knn"] = attempt("knn", lambda: _bench("bench_knn").run(embeddings), results)
    results["app"] = attempt("app", _bench("bench_app").run, results)
    results["tune"] = attempt("tune", _bench("bench_tune").run, results)
    results["tune_browser"] = attempt("tune_browser", _bench("bench_tune_browser").run, results)
    results["total_seconds"] = time.perf_counter() - started
    results["machine"]["load_average_end"] = machine()["load_average"]

    plot_path = ROOT / "bench" / "growth.png"
    report.growth_plot(results, plot_path, plt)
    (ROOT / "BENCHMARKS.md").write_text(report.markdown(results, "bench/growth.png"))
    Path("/tmp/soartlab_bench_results.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"[bench] wrote BENCHMARKS.md and {plot_path} in {results['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
