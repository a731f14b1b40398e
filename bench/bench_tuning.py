"""Tuning that trains (issue 9), measured: `tuning.loss_view` at 100k pairs (a slider
move's engine work), `tuning.preview` with its defaults, and Suggest → train on the demo
set, sklearn's digits (8×8 images) and sklearn's breast cancer (30 measurements): the
suggested transform, the loss of the first and last epoch, held-out accuracy against
both baselines. Prints one JSON object per line.

    .venv/bin/python bench/bench_tuning.py
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
from common import ROOT, timed

from soartlab import tuning
from soartlab.training import Trainer
from soartlab.transform import GammaTransform
from soartlab.workflow import training_setup

# The data sets and settings of the slow test that checks the same promise.
sys.path.insert(0, str(ROOT / "tests"))
from test_learning_defaults import CONFIG, DATA_SETS  # noqa: E402


def loss_view_ms(n_pairs: int = 100_000) -> float:
    rng = np.random.default_rng(0)
    matched = rng.gamma(4, 0.25, n_pairs // 2)
    unmatched = rng.gamma(8, 0.25, n_pairs // 2)
    transform = GammaTransform()
    return 1000 * timed(lambda: tuning.loss_view(matched, unmatched, transform, 1.0), repeats=20)


def main() -> None:
    print(json.dumps({"load_average": os.getloadavg(), "loss_view_100k_ms": loss_view_ms()}))
    for name, make in DATA_SETS.items():
        setup = training_setup(make(), CONFIG, auto_transform=True)
        preview = tuning.preview(setup.model, setup.data, setup.config)
        started = time.perf_counter()
        result = Trainer(setup.config).fit(setup.model, setup.data)
        t = setup.config.transform
        row = {
            "data": name,
            "scale": round(t.scale, 4),
            "offset": round(t.offset, 4),
            "floor": t.floor,
            "pulled": setup.view.pulled,
            "pushed": setup.view.pushed,
            "loss_first_epoch": round(result.history[0]["loss"], 4),
            "loss_last_epoch": round(result.history[-1]["loss"], 4),
            "accuracy": round(result.metrics["accuracy"], 4),
            "untrained": round(result.baselines.untrained, 4),
            "raw_knn": round(result.baselines.raw_knn, 4),
            "train_seconds": round(time.perf_counter() - started, 1),
            "preview_seconds": round(preview.seconds, 2),
            "preview_steps": preview.steps,
            "preview_auc": [
                round(preview.before_report.roc_auc, 3),
                round(preview.report.roc_auc, 3),
            ],
            "load_average": os.getloadavg()[0],
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
