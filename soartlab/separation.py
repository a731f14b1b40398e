"""How well a distance separates matched pairs (same label) from unmatched pairs, and a
gamma transform suggested from that separation. Smaller distance means "same"."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from sklearn.metrics import auc, roc_curve

from soartlab.errors import SoartLabError
from soartlab.transform import ARTICLE_TRANSFORM, GammaTransform


@dataclass
class SeparationReport:
    """Separation of matched from unmatched pair distances."""

    roc_auc: float  # P(matched distance < unmatched distance); 1 = perfect, 0.5 = chance
    overlap: float  # histogram overlap coefficient in [0, 1]; 0 = peaks apart
    threshold: float  # best cut: distance <= threshold is called matched
    escape_rate: float  # unmatched pairs called matched at the threshold
    overkill_rate: float  # matched pairs called unmatched at the threshold
    n_matched: int
    n_unmatched: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _as_distances(values: Any, name: str) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":
        raise SoartLabError(f"{name} must hold numbers; got values of dtype {array.dtype}.")
    array = array.astype(np.float64).ravel()
    if array.size == 0:
        raise SoartLabError(f"{name} is empty; at least one pair distance is needed.")
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise SoartLabError(
            f"{name} holds {bad} non-finite value(s) (NaN or inf); all must be finite."
        )
    return array


def separation_report(matched: Any, unmatched: Any, bins: int = 50) -> SeparationReport:
    """Score how well distances `matched (Nm,)` and `unmatched (Nu,)` separate.

    ROC AUC uses score = −distance with matched pairs as positives. The overlap is
    Σ min(p_matched, p_unmatched) over `bins` shared histogram bins, each histogram
    normalised to sum 1. The threshold minimises escape + overkill (maximises Youden's J
    on the ROC curve); a pair with distance <= threshold is called matched.
    """
    matched_d = _as_distances(matched, "matched")
    unmatched_d = _as_distances(unmatched, "unmatched")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise SoartLabError(f"bins must be a positive integer; got {bins!r}.")

    distances = np.concatenate([matched_d, unmatched_d])
    is_matched = np.concatenate([np.ones(matched_d.size), np.zeros(unmatched_d.size)])

    edges = np.histogram_bin_edges(distances, bins=bins)
    p_matched = np.histogram(matched_d, bins=edges)[0] / matched_d.size
    p_unmatched = np.histogram(unmatched_d, bins=edges)[0] / unmatched_d.size
    overlap = float(np.minimum(p_matched, p_unmatched).sum())

    # One sort serves both: the area under this curve is what roc_auc_score computes.
    false_pos, true_pos, score_cuts = roc_curve(is_matched, -distances)
    roc_auc = float(auc(false_pos, true_pos))
    # The first cut (+inf: nothing called matched) scores the same as the last (everything
    # matched); skipping it keeps the threshold a real distance.
    best = 1 + int(np.argmax((true_pos - false_pos)[1:]))
    threshold = float(-score_cuts[best])

    return SeparationReport(
        roc_auc=roc_auc,
        overlap=min(1.0, overlap),
        threshold=threshold,
        escape_rate=float(np.mean(unmatched_d <= threshold)),
        overkill_rate=float(np.mean(matched_d > threshold)),
        n_matched=int(matched_d.size),
        n_unmatched=int(unmatched_d.size),
    )


def suggest_transform(
    matched_gamma: Any,
    unmatched_gamma: Any,
    margin: float = 1.0,
    floor: float = 0.0,
    *,
    matched_quantile: float = 0.9,
    unmatched_quantile: float = 0.1,
) -> GammaTransform:
    """A `GammaTransform` that sends matched pairs to `floor` and unmatched pairs to
    `margin` or above.

    Rule: take q_m, the `matched_quantile` (90th percentile) of matched gamma, and q_u,
    the `unmatched_quantile` (10th percentile) of unmatched gamma. If q_u > q_m, choose
    the line through (q_m, floor) and (q_u, margin):

        scale = (margin − floor) / (q_u − q_m),   offset = floor − scale·q_m

    so about 90 % of matched pairs land on the floor and about 90 % of unmatched pairs at
    or above the margin. If those quantiles cross, the medians are used instead; if the
    medians do not separate either (unmatched median <= matched median), the article's
    transform (`ARTICLE_TRANSFORM`) with the given `floor` is returned.
    """
    matched_g = _as_distances(matched_gamma, "matched_gamma")
    unmatched_g = _as_distances(unmatched_gamma, "unmatched_gamma")
    for name, value in (("margin", margin), ("floor", floor)):
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise SoartLabError(f"{name} must be a finite number; got {value!r}.")
    if margin <= floor:
        raise SoartLabError(f"margin ({margin}) must be greater than floor ({floor}).")
    for name, q in (
        ("matched_quantile", matched_quantile),
        ("unmatched_quantile", unmatched_quantile),
    ):
        if not 0.0 <= q <= 1.0:
            raise SoartLabError(f"{name} must lie in [0, 1]; got {q!r}.")

    candidates = [
        (np.quantile(matched_g, matched_quantile), np.quantile(unmatched_g, unmatched_quantile)),
        (np.median(matched_g), np.median(unmatched_g)),
    ]
    for low, high in candidates:
        if high > low:
            scale = (margin - floor) / (high - low)
            offset = floor - scale * low
            if math.isfinite(scale) and math.isfinite(offset):
                return GammaTransform(scale=float(scale), offset=float(offset), floor=float(floor))
    return replace(ARTICLE_TRANSFORM, floor=float(floor))
