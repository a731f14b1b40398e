"""Held-out quality tables, measured in one run and written to docs/quality.md:

1. The networks: on the demo set (36×39, fixed layout) and on the texture set (defects
   anywhere on a noisy surface, `soartlab.texture`), the mlp and the cnn, with and without
   augmentation: held-out accuracy, escape and overkill (nearest class), the outcome, the
   epoch kept and the seconds per epoch.
2. The decision on the demo set (the mlp run of table 1): the operating point at three
   target escape rates, fitted on the calibration half of the held-out parts and reported
   on the other half, with exact 95 % upper bounds and the review share; the RT method
   beside it at the same targets and on the same halves; the lot check of the same parts
   exported at 0–255.

    python bench/quality_tables.py [--epochs 8] [--out docs/quality.md]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from soartlab import decision as rule  # noqa: E402
from soartlab import lotcheck  # noqa: E402
from soartlab.config import TrainConfig  # noqa: E402
from soartlab.demo import make_demo  # noqa: E402
from soartlab.errors import DataError  # noqa: E402
from soartlab.rt import pass_fail_figures, rt_scores  # noqa: E402
from soartlab.texture import make_texture_demo  # noqa: E402
from soartlab.training import Trainer  # noqa: E402
from soartlab.workflow import calibrate, training_setup  # noqa: E402

SETUPS = (("mlp", "none"), ("cnn", "none"), ("cnn", "auto"))
TARGETS = (0.005, 0.02, 0.05)


def _percent(rate, bound=None) -> str:
    if rate is None:
        return "–"
    return f"{rate:.1%}" if bound is None else f"{rate:.1%} (≤ {bound:.1%})"


def train(dataset, arch: str, augment: str, epochs: int):
    config = TrainConfig(arch=arch, augment=augment, epochs=epochs, device="cpu")
    setup = training_setup(dataset, config, auto_transform=True)
    started = time.perf_counter()
    result = Trainer(setup.config).fit(setup.model, setup.data)
    seconds = time.perf_counter() - started
    return setup, result, seconds


def networks_table(sets: dict, epochs: int) -> tuple[str, dict]:
    lines = [
        "| data | network | augmentation | held-out accuracy | escape | overkill | raw kNN "
        "| majority | outcome | epoch kept / run | s per epoch |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    kept = {}
    for name, dataset in sets.items():
        for arch, augment in SETUPS:
            setup, result, seconds = train(dataset, arch, augment, epochs)
            kept[(name, arch, augment)] = (setup, result)
            m = result.metrics
            lines.append(
                f"| {name} | {arch} | {result.augment} | {m['accuracy']:.3f} "
                f"| {m['escape_rate']:.3f} | {m['overkill_rate']:.3f} "
                f"| {result.baselines.raw_knn:.3f} | {m['validation']['majority'] or 0:.3f} "
                f"| {result.outcome.value} | {m['kept_epoch']} / {len(result.history)} "
                f"| {seconds / max(len(result.history), 1):.1f} |"
            )
            print(lines[-1], flush=True)
    return "\n".join(lines), kept


def decision_table(setup, result) -> str:
    config, data = setup.config, setup.data
    calibration = calibrate(config, data, result)
    held_out = calibration.held_out
    is_defect = data.y_test != data.good_index
    rt = rt_scores(data.x_train, data.y_train, data.good_index, data.x_test)
    cal, rep = held_out.calibration, ~held_out.calibration
    lines = [
        "| target escape | escape (95 % upper) | overkill (95 % upper) | review | RT escape "
        "| RT overkill |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for target in TARGETS:
        _, figures = rule.rescore(held_out, data.label_names, target)
        finite = np.isfinite(rt[cal])
        point = rule.fit_operating_point(
            rt[cal][finite], is_defect[cal][finite], target_escape=target
        )
        rt_figures = pass_fail_figures(rt[rep] <= point.pass_below, is_defect[rep])
        lines.append(
            f"| {target:.1%} | {_percent(figures.escape_rate, figures.escape_upper_95)} "
            f"| {_percent(figures.overkill_rate, figures.overkill_upper_95)} "
            f"| {figures.review_rate:.1%} | {rt_figures['escape_rate']:.1%} "
            f"| {rt_figures['overkill_rate']:.1%} |"
        )
    n_cal, n_rep = int(cal.sum()), int(rep.sum())
    lines.append("")
    lines.append(
        f"{n_cal} calibration parts set each operating point; {n_rep} other held-out parts "
        f"({int(is_defect[rep].sum())} defective, {int((~is_defect[rep]).sum())} good) report "
        "it. The RT method (no training) uses the same halves and the same rule "
        "(`decision.fit_operating_point`), without a review band."
    )
    stats = calibration.stats
    try:
        lotcheck.check_lot(data.x_test * 255.0, stats, input_shape=data.input_shape)
        lines.append("\nThe same parts at 0–255: **not refused** (a defect of the check).")
    except DataError as exc:
        lines.append(f"\nThe same held-out parts exported at 0–255: refused — “{exc}”")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "quality.md")
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    sets = {"demo": make_demo(), "texture": make_texture_demo(n_samples=2000, size=32)}
    networks, kept = networks_table(sets, args.epochs)
    setup, result = kept[("demo", "mlp", "none")]
    decisions = decision_table(setup, result)
    config = replace(TrainConfig(), epochs=args.epochs, device="cpu")
    text = f"""# Held-out quality, measured

Written by `python bench/quality_tables.py` ({started}, CPU, torch
{__import__("torch").__version__}). Settings: the defaults (`TrainConfig`:
{config.pairs_per_epoch:,} pairs per epoch, batch {config.batch_size}, validation share
{config.val_size}, patience {config.patience}) with {args.epochs} epochs at most and the
transform chosen as the Train page chooses it. Demo set: 3,000 parts, 8 classes, 36×39.
Texture set: 2,000 crops of 32×32 of a noisy surface, defects (scratch, pit, stain,
crack, particle) anywhere in the crop.

## 1. The networks

Held-out figures by the nearest class (a part passes when its nearest class is good);
"raw kNN": Euclidean nearest neighbours on the normalised pixels, same split; "majority":
calling every validation part its most common class.

{networks}

## 2. The decision on the demo set (the mlp run above)

{decisions}
"""
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
