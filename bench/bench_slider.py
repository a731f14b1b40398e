"""3. A slider move on the Tune page: re-transform the cached raw gammas with the new
`GammaTransform`, re-bin both panels and build the figure (`plots.before_after_histograms`),
then serialise it (`fig.to_json()`, what Streamlit sends to the browser). Also the single
`pair_histogram`. The seed re-plots with matplotlib's `plt.hist` on the raw lists.
"""

from __future__ import annotations

import io
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from common import timed
from plotly.utils import PlotlyJSONEncoder

from soartlab import plots
from soartlab.transform import GammaTransform

GROWTH_PAIRS = (5_000, 20_000, 100_000, 300_000)
MAIN_PAIRS = 100_000


def cached_gammas(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    matched = rng.gamma(2.0, 0.3, n // 2)
    unmatched = 1.0 + rng.gamma(3.0, 0.4, n - n // 2)
    return matched, unmatched


def slider_move(matched, unmatched, transform: GammaTransform) -> str:
    fig = plots.before_after_histograms(
        matched, unmatched, transform(matched), transform(unmatched), threshold=0.5
    )
    return fig.to_json()


def template_move(template: dict, matched, unmatched, transform: GammaTransform) -> str:
    """A prototype of the fix, not what the app runs: keep the figure as a plain dict
    (`fig.to_dict()` once per page visit) and on a slider move replace only the tuned
    panel's two traces and the threshold line, then serialise without Plotly validation."""
    tuned = (transform(matched), transform(unmatched))
    edges = plots.shared_edges(*tuned, bins=40)
    centers = (edges[:-1] + edges[1:]) / 2
    for trace, values in zip(template["data"][2:4], tuned, strict=True):
        counts = plots.histogram_bins(values, edges)
        trace["x"], trace["y"] = centers, counts / max(counts.sum(), 1)
        trace["width"], trace["customdata"] = float(edges[1] - edges[0]), counts
    return json.dumps(template, cls=PlotlyJSONEncoder)


def single_histogram(matched, unmatched, transform: GammaTransform) -> str:
    return plots.pair_histogram(transform(matched), transform(unmatched)).to_json()


def seed_replot(matched, unmatched, transform: GammaTransform) -> int:
    """The seed's way: plt.hist of the two lists (20 bins), rendered to a PNG."""
    fig = plt.figure(figsize=[8, 6])
    plt.hist(list(transform(matched)), alpha=0.5, bins=20, label="Matched", color="b")
    plt.hist(list(transform(unmatched)), alpha=0.3, bins=20, label="Unmatch", color="r")
    plt.legend(loc="upper left", fontsize=13)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.tell()


def run() -> dict:
    rows = []
    transforms = [GammaTransform(scale=0.5 + 0.01 * k, offset=-0.25) for k in range(10)]
    for n in GROWTH_PAIRS:
        matched, unmatched = cached_gammas(n)
        counter = iter(range(10**9))

        def move(matched=matched, unmatched=unmatched, counter=counter):
            return slider_move(matched, unmatched, transforms[next(counter) % len(transforms)])

        seconds = timed(move, repeats=9)
        single = timed(lambda m=matched, u=unmatched: single_histogram(m, u, transforms[1]), 9)
        template = json.loads(slider_move(matched, unmatched, transforms[0]))
        fast = timed(
            lambda m=matched, u=unmatched, t=template: template_move(t, m, u, transforms[1]), 9
        )
        seed = timed(lambda m=matched, u=unmatched: seed_replot(m, u, transforms[1]), 3)
        rows.append(
            {
                "pairs": n,
                "seconds": seconds,
                "single_seconds": single,
                "template_seconds": fast,
                "seed_seconds": seed,
                "payload_bytes": len(move().encode()),
                "single_payload_bytes": len(single_histogram(matched, unmatched, transforms[1])),
                "seed_png_bytes": seed_replot(matched, unmatched, transforms[1]),
            }
        )
    return {"growth": rows, "main": next(r for r in rows if r["pairs"] == MAIN_PAIRS)}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
