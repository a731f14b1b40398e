"""Shared helpers for the benchmark scripts: timing, the machine, the seed's own code.

Every benchmark times SOART Lab and the seed article's way of doing the same work in the
same process, one right after the other, so that their ratio is measured under the same
load. The machine these run on may be shared: times are medians of several repeats.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from scipy.spatial.distance import minkowski

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


# --- the seed article's code, as it wrote it ------------------------------------------


class SeedEmbeddingNet(nn.Module):
    """The seed's EmbeddingNet (36×39 → 128), unchanged."""

    def __init__(self):
        super().__init__()
        self.linear1 = nn.Linear(36 * 39, 512)
        self.linear2 = nn.Linear(512, 256)
        self.linear3 = nn.Linear(256, 256)
        self.final = nn.Linear(256, 128)
        self.relu = nn.ReLU()

    def forward(self, img):
        x = img.view(-1, 36 * 39)
        x = self.relu(self.linear1(x))
        x = self.relu(self.linear2(x))
        x = self.relu(self.linear3(x))
        x = self.final(x)
        return x

    def get_embedding(self, x):
        return self.forward(x)


class SeedSiameseNet(nn.Module):
    def __init__(self, embedding_net):
        super().__init__()
        self.embedding_net = embedding_net

    def forward(self, x1, x2):
        return self.embedding_net(x1), self.embedding_net(x2)

    def get_embedding(self, x):
        return self.embedding_net(x)


def calc_soaRT3(tsr_sig_array, tsr_tani_array):  # noqa: N802 - the seed's name
    """The seed's per-pair SOART3 (np.dot + scipy minkowski), unchanged."""
    y = tsr_sig_array
    x = tsr_tani_array
    xx = np.dot(x, x) + 0.0001
    xy = np.dot(x, y) + 0.0001
    beta = xy / xx
    vDistance = minkowski(y, beta * x, 4)  # noqa: N806
    mDistance = minkowski(y, beta * x, 1)  # noqa: N806
    log_beta = beta
    log_yita = math.log(mDistance + 1.0)
    log_gamma = log_yita - math.log(vDistance + 1.0)
    return round(log_beta, 5), round(log_yita, 5), round(log_gamma, 5)


def seed_loop(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The seed's way of scoring many pairs: calc_soaRT3 in a Python loop → gamma (N,)."""
    return np.array([calc_soaRT3(y[i], x[i])[2] for i in range(len(y))])


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
