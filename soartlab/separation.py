"""How well a distance separates matched pairs (same label) from unmatched pairs, and a
gamma transform suggested from that separation. Smaller distance means "same"."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.metrics import auc, roc_curve

from soartlab.errors import SoartLabError


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
