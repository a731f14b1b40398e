"""Shared helpers for the benchmark scripts: timing, the machine, the demo arrays.

Every benchmark times SOART Lab and the article's way of doing the same work in the
same process, one right after the other, so that their ratio is measured under the same
load. The machine these run on may be shared: times are medians of several repeats.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def timed(fn: Callable[[], object], repeats: int = 5, min_seconds: float = 0.0) -> float:
    """Median wall time of `fn()` in seconds over `repeats` runs (after one warm-up run);
    stops early once `min_seconds` of repeats have been spent and three runs are in."""
    fn()
    times: list[float] = []
    spent = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        spent += times[-1]
        if min_seconds and spent > min_seconds and len(times) >= 3:
            break
    return float(np.median(times))


def paired_ratio(slow: Callable[[], object], fast: Callable[[], object], rounds: int = 5) -> dict:
    """Time `slow` and `fast` alternately, `rounds` times each (after a warm-up of both),
    so that both see the same machine load; returns their median times and the median of
    the per-round ratios slow / fast."""
    slow(), fast()
    slow_times, fast_times = [], []
    for _ in range(rounds):
        for fn, times in ((slow, slow_times), (fast, fast_times)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    ratios = [a / b for a, b in zip(slow_times, fast_times, strict=True)]
    return {
        "slow_seconds": float(np.median(slow_times)),
        "fast_seconds": float(np.median(fast_times)),
        "ratio": float(np.median(ratios)),
    }


def once(fn: Callable[[], object]) -> tuple[float, object]:
    """Wall time of a single call and its result."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine() -> dict:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "load_average": load_average(),
    }


def memory_bandwidth(n_bytes: int = 256 * 2**20) -> dict:
    """Sustained bandwidth in GB/s from large NumPy operations (bytes moved / time):
    a copy (read + write) and an add (two reads + one write), buffers pre-touched."""
    n = n_bytes // 4
    a = np.ones(n, dtype=np.float32)
    b = np.ones(n, dtype=np.float32)
    out = np.zeros(n, dtype=np.float32)
    copy = timed(lambda: np.copyto(out, a), repeats=7)
    add = timed(lambda: np.add(a, b, out=out), repeats=7)
    return {"copy_gbs": 2 * n * 4 / copy / 1e9, "add_gbs": 3 * n * 4 / add / 1e9}


def demo_arrays(n_samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Demo images (N, 36, 39) float32, normalised like training does, and labels (N,)."""
    from soartlab.demo import make_arrays

    images, labels = make_arrays(n_samples, seed=seed)
    images = images.astype(np.float32)
    images = (images - images.mean()) / images.std()
    return images, np.asarray(labels, dtype=np.int64)


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} µs"
