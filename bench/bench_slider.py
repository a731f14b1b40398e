"""3. A slider move on the Tune page's server-drawn path ("Live in the browser" off),
timed through the code the app runs: re-transform the cached raw gammas with the new
`GammaTransform`, re-bin both panels and build the figure (`plots.before_after_histograms`
with its threshold, floor and margin lines, sized as `soartlab.ui.tune` sizes it), then
serialise it the way `st.plotly_chart` does (`fig.to_dict()`, then JSON without
re-validation). Also the single `pair_histogram`, and the whole fragment's work per move
(the above plus the loss's view, `tuning.loss_view`). The article re-plots with
matplotlib's `plt.hist` on the raw lists. The live sliders' path is bench_tune*.py.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import plotly.io as pio
import plotly.tools
from common import timed

from soartlab import plots
from soartlab.transform import GammaTransform
from soartlab.tuning import loss_view
from soartlab.ui.tune import HISTOGRAM_LAYOUT

GROWTH_PAIRS = (5_000, 20_000, 100_000, 300_000)
MAIN_PAIRS = 100_000


def cached_gammas(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    matched = rng.gamma(2.0, 0.3, n // 2)
    unmatched = 1.0 + rng.gamma(3.0, 0.4, n - n // 2)
    return matched, unmatched


def chart_payload(figure) -> str:
    """What `st.plotly_chart(figure)` sends: the figure's dict (a `go.Figure` is taken as
    already validated), serialised without validation."""
    spec = plotly.tools.return_figure_from_figure_or_data(figure, validate_figure=True)
    return pio.to_json(spec, validate=False)


def slider_move(matched, unmatched, transform: GammaTransform, threshold: float = 0.5) -> str:
    """The figure part of `soartlab.ui.tune.tuning_panel` on one slider move (the raw
    threshold, kept with the sample, mapped through the transform)."""
    figure = plots.before_after_histograms(
        matched,
        unmatched,
        transform(matched),
        transform(unmatched),
        threshold=float(transform(np.array([threshold]))[0]),
        floor=transform.floor,
        margin=1.0,
    )
    figure.update_layout(HISTOGRAM_LAYOUT)
    return chart_payload(figure)


def fragment_move(matched, unmatched, transform: GammaTransform) -> str:
    """Everything the fragment computes on a slider move (the raw side's separation
    report is kept with the sample): the loss's view, then the figure."""
    loss_view(matched, unmatched, transform, 1.0)
    return slider_move(matched, unmatched, transform)


def single_histogram(matched, unmatched, transform: GammaTransform) -> str:
    return chart_payload(plots.pair_histogram(transform(matched), transform(unmatched)))


def article_replot(matched, unmatched, transform: GammaTransform) -> int:
    """The article's way: plt.hist of the two lists (20 bins), rendered to a PNG."""
    fig = plt.figure(figsize=[8, 6])
    plt.hist(list(transform(matched)), alpha=0.5, bins=20, label="Matched", color="b")
    plt.hist(list(transform(unmatched)), alpha=0.3, bins=20, label="Unmatch", color="r")
    plt.legend(loc="upper left", fontsize=13)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.tell()


def run(pairs: tuple[int, ...] = GROWTH_PAIRS) -> dict:
    rows = []
    transforms = [GammaTransform(scale=0.5 + 0.01 * k, offset=-0.25) for k in range(10)]
    for n in pairs:
        matched, unmatched = cached_gammas(n)
        counter = iter(range(10**9))

        def next_transform(counter=counter) -> GammaTransform:
            # A different slider value each repeat, as when dragging.
            return transforms[next(counter) % len(transforms)]

        seconds = timed(lambda m=matched, u=unmatched: slider_move(m, u, next_transform()), 9)
        fragment = timed(lambda m=matched, u=unmatched: fragment_move(m, u, next_transform()), 5)
        single = timed(lambda m=matched, u=unmatched: single_histogram(m, u, transforms[1]), 9)
        article = timed(lambda m=matched, u=unmatched: article_replot(m, u, transforms[1]), 3)
        rows.append(
            {
                "pairs": n,
                "seconds": seconds,
                "fragment_seconds": fragment,
                "single_seconds": single,
                "article_seconds": article,
                "payload_bytes": len(slider_move(matched, unmatched, transforms[0]).encode()),
                "single_payload_bytes": len(single_histogram(matched, unmatched, transforms[1])),
                "article_png_bytes": article_replot(matched, unmatched, transforms[1]),
            }
        )
    main = next((r for r in rows if r["pairs"] == MAIN_PAIRS), rows[-1])
    return {"growth": rows, "main": main}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
