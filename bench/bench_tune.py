"""7. Tuning that trains, server side: a settled slider move with the loss's view at 100k
pairs, and Preview's time to its first histograms.

- Slider move (live sliders): what the Tune page's fragment computes when the browser
  reports new values — `GammaTransform`, `tuning.loss_view` (pulled, pushed, loss) — plus
  the component's data (fine bins, built once per sample, serialised on every rerun).
  The histograms themselves are redrawn in the browser (bench_tune_browser.py).
- Preview: `tuning.preview` of the demo set's network to be trained (300 steps of the
  default batch on a 2,000-sample subsample), as the page's worker runs it; its result
  holds the histograms the page draws, so its time is the time to the first histogram.
"""

from __future__ import annotations

import json

from bench_slider import cached_gammas
from common import timed

from soartlab import tuning
from soartlab.transform import GammaTransform
from soartlab.ui.tune_live import FineBins

MOVE_PAIRS = 100_000
PREVIEW_STEPS = 300


def settled_move(matched, unmatched, values: dict, margin: float = 1.0):
    """The fragment's work on a reported value: the transform and the loss's view."""
    return tuning.loss_view(matched, unmatched, GammaTransform(**values), margin)


def slider_move(pairs: int = MOVE_PAIRS) -> dict:
    matched, unmatched = cached_gammas(pairs)
    counter = iter(range(10**9))

    def move():
        # A different value each repeat, as after each drag.
        return settled_move(matched, unmatched, {"scale": 0.5 + 0.01 * (next(counter) % 10),
                                                 "offset": -0.25, "floor": 0.0})  # fmt: skip

    fine = FineBins.of(matched, unmatched)
    payload = json.dumps(fine.to_dict())
    return {
        "pairs": pairs,
        "seconds": timed(move, 15),
        "fine_bins_seconds": timed(lambda: FineBins.of(matched, unmatched), 5),
        "payload_seconds": timed(lambda: json.dumps(fine.to_dict()), 15),
        "payload_bytes": len(payload),
    }


def preview(steps: int = PREVIEW_STEPS) -> dict:
    """Preview on the demo set, as the page starts it (default settings, CPU)."""
    from soartlab.config import TrainConfig
    from soartlab.demo import make_demo
    from soartlab.prepare import prepare
    from soartlab.training import initial_model

    base = TrainConfig(device="cpu")
    data = prepare(make_demo(), base.test_size, base.seed)
    model = initial_model(base, data)
    pairs = tuning.pair_gammas(
        data.x_train, data.y_train, model=model, n_pairs=2000, seed=base.seed
    )
    config = TrainConfig(
        device="cpu",
        transform=tuning.suggest_transform_for_loss(pairs.matched, pairs.unmatched, base.margin),
    )
    result = tuning.preview(model, data, config, steps=steps)
    return {
        "steps": result.steps,
        "seconds": result.seconds,
        "batch_size": config.batch_size,
        "first_loss": result.first_loss,
        "last_loss": result.last_loss,
        "auc_before": result.before_report.roc_auc,
        "auc_after": result.report.roc_auc,
        "outcome": result.outcome.value,
    }


def run() -> dict:
    return {"move": slider_move(), "preview": preview()}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2, default=float))
