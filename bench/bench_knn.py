"""4. kNN under SOART3 gamma: 5,000 queries against 20,000 references, 128-d.

SOART Lab: `soartlab.search.soart3_knn` (matmul prefilter + exact re-ranking). The
baseline is brute force: every pair scored with `soart3_pairwise` (chunked), the article's
way of getting a nearest neighbour at all; it is timed on a subsample of queries and
extrapolated per pair, and gives the agreement. Peak memory is the growth of the maximum
resident set of a fresh subprocess that runs only the search.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import ROOT

from soartlab.search import DEFAULT_CANDIDATES, soart3_knn

N_QUERIES, N_REFS = 5_000, 20_000
GROWTH = ((1_250, 5_000), (2_500, 10_000), (5_000, 20_000))
BRUTE_QUERIES = 200


def clustered(n: int, d: int = 128, n_clusters: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(n_clusters, d)).astype(np.float32)
    labels = rng.integers(n_clusters, size=n)
    gain = rng.uniform(0.7, 1.3, size=(n, 1)).astype(np.float32)
    return gain * centres[labels] + 0.3 * rng.normal(size=(n, d)).astype(np.float32)


def agreement(Q: np.ndarray, R: np.ndarray, n_queries: int = BRUTE_QUERIES) -> dict:
    """Top-1 and top-5 agreement of the two-stage search with brute force on the first
    `n_queries` queries, and the brute-force time per pair."""
    q = Q[:n_queries]
    start = time.perf_counter()
    exact_idx, exact_gamma = soart3_knn(q, R, k=5, exact=True)
    brute_seconds = time.perf_counter() - start
    idx, gamma = soart3_knn(q, R, k=5)
    top1 = idx[:, 0] == exact_idx[:, 0]
    # A different index with the same gamma (a tie) is as near; count it as agreeing.
    top1 |= np.isclose(gamma[:, 0], exact_gamma[:, 0], rtol=0, atol=1e-6)
    top5 = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(idx, exact_idx, strict=True)])
    return {
        "queries": n_queries,
        "references": len(R),
        "top1": float(np.mean(top1)),
        "top5_overlap": float(top5),
        "brute_seconds_per_pair": brute_seconds / (n_queries * len(R)),
    }


def peak_memory(Q: np.ndarray, R: np.ndarray) -> dict:
    """Run the search in a fresh process with the same torch threads; its resident set
    before the search and at its peak (bytes)."""
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "q.npy", Q)
        np.save(Path(tmp) / "r.npy", R)
        out = subprocess.run(
            [sys.executable, __file__, "--memory", tmp, str(torch.get_num_threads())],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return -1


def _memory_child(folder: str, threads: int) -> None:
    torch.set_num_threads(threads)
    Q, R = np.load(Path(folder) / "q.npy"), np.load(Path(folder) / "r.npy")
    soart3_knn(Q[:50], R[:500])  # import and warm torch before the baseline
    # Reset the peak-RSS mark (VmHWM) so that it measures the search alone; ru_maxrss
    # would also carry the parent's peak across fork and exec.
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_bytes("VmRSS")
    start = time.perf_counter()
    soart3_knn(Q, R, k=1)
    seconds = time.perf_counter() - start
    after = _status_bytes("VmHWM")
    print(
        json.dumps({"before": before, "after": after, "delta": after - before, "seconds": seconds})
    )


def profile_search(Q: np.ndarray, R: np.ndarray, top: int = 8) -> list[dict]:
    """cProfile of one search: the functions with the most time of their own."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(soart3_knn, Q, R, 1)
    stats = pstats.Stats(profiler)
    total = stats.total_tt or 1.0
    rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:top]
    return [
        {
            "function": name if file == "~" else f"{Path(file).name}:{line}({name})",
            "calls": calls,
            "seconds": own,
            "share": own / total,
        }
        for (file, line, name), (_, calls, own, _, _) in rows
    ]


def run(embeddings: np.ndarray) -> dict:
    """`embeddings`: at least 25,000 rows of demo-set embeddings (N, 128) float32."""
    R, Q = embeddings[:N_REFS], embeddings[N_REFS : N_REFS + N_QUERIES]
    soart3_knn(Q[:100], R)  # warm-up
    growth = []
    for n_q, n_r in GROWTH:
        start = time.perf_counter()
        soart3_knn(Q[:n_q], R[:n_r], k=1)
        growth.append({"queries": n_q, "references": n_r, "seconds": time.perf_counter() - start})
    main_seconds = [growth[-1]["seconds"]]
    start = time.perf_counter()
    soart3_knn(Q, R, k=1)
    main_seconds.append(time.perf_counter() - start)

    demo = agreement(Q, R)
    synthetic = clustered(N_REFS + N_QUERIES)
    synthetic_agreement = agreement(synthetic[N_REFS:], synthetic[:N_REFS])
    per_pair = demo["brute_seconds_per_pair"]
    for row in growth:
        row["brute_seconds_extrapolated"] = per_pair * row["queries"] * row["references"]
    memory = peak_memory(Q, R)
    profile = profile_search(Q[:1000], R)
    seconds = float(np.median(main_seconds))
    brute = per_pair * N_QUERIES * N_REFS
    return {
        "candidates": DEFAULT_CANDIDATES,
        "seconds": seconds,
        "brute_seconds_extrapolated": brute,
        "speedup": brute / seconds,
        "memory": memory,
        "agreement_demo": demo,
        "agreement_clustered": synthetic_agreement,
        "growth": growth,
        "profile_1000_queries": profile,
    }


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--memory":
        _memory_child(sys.argv[2], int(sys.argv[3]))
    else:
        data = clustered(N_REFS + N_QUERIES, seed=5)
        print(json.dumps(run(data), indent=2))
