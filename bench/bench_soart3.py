"""1. SOART3 row-wise scoring: `soartlab.soart3` on N pairs of 128-d float32 against the
article's per-pair `calc_soaRT3` (np.dot + scipy minkowski) in a Python loop.

The article's loop is timed on a subsample and extrapolated per pair. The memory-bandwidth
bound: soart3 must at least read both inputs once, 2·N·d·4 bytes.
"""

from __future__ import annotations

import numpy as np
from article_way import article_loop
from common import memory_bandwidth, paired_ratio, timed

from soartlab.metric import soart3

DIM = 128
MAIN_PAIRS = 100_000
GROWTH_PAIRS = (10_000, 30_000, 100_000, 300_000)
ARTICLE_SUBSAMPLE = 3_000


def pairs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.standard_normal((n, DIM), dtype=np.float32)
    x = y * rng.uniform(0.5, 1.5, (n, 1)).astype(np.float32)
    x += 0.5 * rng.standard_normal((n, DIM), dtype=np.float32)
    return y, x


def run() -> dict:
    bandwidth = memory_bandwidth()
    limit_gbs = max(bandwidth["copy_gbs"], bandwidth["add_gbs"])
    y, x = pairs(ARTICLE_SUBSAMPLE, seed=1)
    article_seconds = timed(lambda: article_loop(y, x), repeats=3)
    article_per_pair = article_seconds / ARTICLE_SUBSAMPLE
    agreement = float(np.max(np.abs(article_loop(y, x) - soart3(y, x)[2])))

    growth = []
    for n in GROWTH_PAIRS:
        y, x = pairs(n)
        seconds = timed(lambda y=y, x=x: soart3(y, x), repeats=7)
        bytes_read = 2 * n * DIM * 4
        growth.append(
            {
                "pairs": n,
                "seconds": seconds,
                "pairs_per_s": n / seconds,
                "article_seconds_extrapolated": article_per_pair * n,
                "speedup": article_per_pair * n / seconds,
                "bytes_read": bytes_read,
                "gbs": bytes_read / seconds / 1e9,
                "bandwidth_fraction": bytes_read / seconds / 1e9 / limit_gbs,
            }
        )
    main = dict(next(row for row in growth if row["pairs"] == MAIN_PAIRS))
    # The target ratio, measured with the article subsample and 100k pairs timed alternately.
    y_article, x_article = pairs(ARTICLE_SUBSAMPLE, seed=1)
    y, x = pairs(MAIN_PAIRS)
    paired = paired_ratio(
        lambda: article_loop(y_article, x_article), lambda: soart3(y, x), rounds=7
    )
    main["paired_speedup"] = paired["ratio"] * MAIN_PAIRS / ARTICLE_SUBSAMPLE
    main["paired_seconds"] = paired["fast_seconds"]
    return {
        "bandwidth": bandwidth,
        "bandwidth_limit_gbs": limit_gbs,
        "article_subsample": ARTICLE_SUBSAMPLE,
        "article_per_pair_s": article_per_pair,
        "max_abs_gamma_diff_vs_article": agreement,
        "main": main,
        "growth": growth,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
