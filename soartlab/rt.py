"""The RT method (Taguchi's recognition-Taguchi method, from which SOART3 comes): a
baseline that needs no training, to show what the Siamese network adds.

A unit space (単位空間) is made of good parts. Its mean vector ``m`` over the ``k``
features is the standard; each part ``x`` (k,) is read as a proportional signal of it:

    r    = m·m                      effective divisor
    L    = m·x                      linear form
    Y1   = beta = L / r             sensitivity (how much of the standard the part holds)
    S_T  = x·x                      total variation
    S_b  = L² / r                   proportional term
    S_e  = S_T − S_b                error variation
    V_e  = S_e / (k − 1)            error variance
    Y2   = sqrt(V_e)                standard-deviation term (what the standard leaves over)

Over the unit space's parts, (Y1, Y2) has a mean and a 2×2 covariance; a part's RT
distance is the Mahalanobis distance of its (Y1, Y2) from that mean. Features are taken
as they are (raw pixels for images), as the method does.

The pass/fail threshold is `soartlab.decision`'s (`fit_operating_point`: at most the target
share of the calibration defects pass) on the run's calibration half of the held-out parts
(`decision.calibration_split`), and it is reported on the other half.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from soartlab import decision as rule
from soartlab.errors import DataError

# Eigenvalues of the (Y1, Y2) covariance are floored at this share of the largest, so a
# singular unit space (e.g. parts that are exact multiples of each other) still inverts.
COVARIANCE_FLOOR = 1e-9
MIN_UNIT_PARTS = 3  # a 2×2 covariance needs more parts than dimensions
DEFAULT_TARGET_ESCAPE = rule.DEFAULT_TARGET_ESCAPE  # defects passed, on the calibration half


@dataclass(frozen=True)
class UnitSpace:
    """What the RT method keeps from the good parts: ``mean`` (k,) the standard,
    ``divisor`` r = m·m, and the (Y1, Y2) mean (2,) and inverse covariance (2, 2)."""

    mean: np.ndarray
    divisor: float
    y_mean: np.ndarray
    y_cov_inv: np.ndarray
    n_parts: int


def rt_features(mean: np.ndarray, divisor: float, parts: np.ndarray) -> np.ndarray:
    """``(Y1, Y2)`` of each part (N, k) against the standard ``mean`` (k,) → (N, 2) float64:
    sensitivity beta and the standard-deviation term sqrt(V_e)."""
    x = np.asarray(parts, dtype=np.float64)
    k = x.shape[1]
    linear = x @ np.asarray(mean, dtype=np.float64)
    total = np.einsum("ij,ij->i", x, x)
    # S_e is a difference of two large terms; rounding can leave it a hair below zero
    error = np.maximum(total - linear**2 / divisor, 0.0)
    return np.column_stack([linear / divisor, np.sqrt(error / (k - 1))])


def fit_unit_space(good_parts: np.ndarray) -> UnitSpace:
    """The unit space of ``good_parts`` (N, k): `DataError` when there are fewer than
    `MIN_UNIT_PARTS` parts or features, or the mean vector is zero (no standard to be
    proportional to)."""
    x = np.asarray(good_parts, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < MIN_UNIT_PARTS or x.shape[1] < 2:
        raise DataError(
            f"The RT unit space needs at least {MIN_UNIT_PARTS} good parts of at least 2 "
            f"features; got an array of shape {x.shape}."
        )
    if not np.isfinite(x).all():
        raise DataError("The RT unit space's good parts hold values that are not finite.")
    mean = x.mean(axis=0)
    divisor = float(mean @ mean)
    if not divisor > 0:
        raise DataError(
            "The good parts' mean vector is zero, so the RT method has no standard to "
            "measure against (r = m·m = 0)."
        )
    y = rt_features(mean, divisor, x)
    cov = np.cov(y, rowvar=False)
    values, vectors = np.linalg.eigh(cov)
    top = max(float(values.max()), np.finfo(np.float64).tiny)
    values = np.maximum(values, COVARIANCE_FLOOR * top)
    cov_inv = (vectors / values) @ vectors.T
    return UnitSpace(mean, divisor, y.mean(axis=0), cov_inv, len(x))


def rt_distance(unit: UnitSpace, parts: np.ndarray) -> np.ndarray:
    """Mahalanobis distance (N,) of each part's (Y1, Y2) from the unit space's."""
    z = rt_features(unit.mean, unit.divisor, parts) - unit.y_mean
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", z, unit.y_cov_inv, z), 0.0))


def rt_scores(
    train_x: np.ndarray, train_labels: np.ndarray, good_index: int, parts: np.ndarray
) -> np.ndarray:
    """RT distance (N,) of ``parts`` (N, k) from the unit space of the good rows of
    ``train_x`` (M, k) (``train_labels == good_index``); larger is further from good.
    A part whose values are not finite scores inf (never passed)."""
    labels = np.asarray(train_labels)
    unit = fit_unit_space(np.asarray(train_x)[labels == good_index])
    parts = np.asarray(parts, dtype=np.float64)
    finite = np.isfinite(parts).all(axis=1)
    scores = np.full(len(parts), np.inf)
    with np.errstate(over="ignore", invalid="ignore"):
        scores[finite] = rt_distance(unit, parts[finite])
    scores[~np.isfinite(scores)] = np.inf
    return scores


# --- Operating point: `soartlab.decision`'s, the one rule for the run and for RT.


def pass_fail_figures(judged_pass: np.ndarray, is_defect: np.ndarray) -> dict:
    """Escape (defects passed / defects), overkill (good parts failed / good parts) and
    accuracy of the pass/fail call, with the counts."""
    judged_pass = np.asarray(judged_pass, dtype=bool)
    is_defect = np.asarray(is_defect, dtype=bool)
    escapes = int((judged_pass & is_defect).sum())
    overkills = int((~judged_pass & ~is_defect).sum())
    n_defective, n_good = int(is_defect.sum()), int((~is_defect).sum())
    return {
        "accuracy": float(np.mean(judged_pass != is_defect)) if len(is_defect) else 0.0,
        "escape_rate": escapes / n_defective if n_defective else 0.0,
        "overkill_rate": overkills / n_good if n_good else 0.0,
        "escapes": escapes,
        "overkills": overkills,
        "n_defective": n_defective,
        "n_good": n_good,
    }


@dataclass(frozen=True)
class RTBaseline:
    """The RT baseline on a run's held-out parts: ``threshold`` (chosen on
    ``calibration_rows`` for ``target_escape``), ``figures`` (`pass_fail_figures` on
    ``report_rows``) and the trained run's own figures on the same rows (``run_figures``)."""

    threshold: float
    target_escape: float
    figures: dict
    run_figures: dict | None
    calibration_rows: np.ndarray
    report_rows: np.ndarray


def rt_baseline(
    train_x: np.ndarray,
    train_labels: np.ndarray,
    good_index: int,
    test_x: np.ndarray,
    test_labels: np.ndarray,
    *,
    run_pred: np.ndarray | None = None,
    target_escape: float = DEFAULT_TARGET_ESCAPE,
    seed: int = 0,
) -> RTBaseline:
    """The RT baseline beside a trained run: unit space from the good training rows,
    scores for the held-out parts ``test_x`` (N, k), `decision.fit_operating_point` for
    ``target_escape`` on the calibration half (`decision.calibration_split` with ``seed``:
    the run's own halves for the run's seed), pass (score ≤ its ``pass_below``) or fail
    on the report half. ``run_pred`` (N,): the
    trained run's predicted class ids of the same parts (a part not scored, -1, counts
    as failed), scored on the same report half."""
    is_defect = np.asarray(test_labels) != good_index
    scores = rt_scores(train_x, train_labels, good_index, test_x)
    calibration, report = rule.calibration_split(test_labels, good_index, seed)
    # a non-finite score (inf) is never passed: the threshold comes from finite ones
    finite = np.isfinite(scores[calibration])
    point = rule.fit_operating_point(
        scores[calibration][finite], is_defect[calibration][finite], target_escape=target_escape
    )
    threshold = point.pass_below
    figures = pass_fail_figures(scores[report] <= threshold, is_defect[report])
    run_figures = None
    if run_pred is not None:
        run_pass = np.asarray(run_pred)[report] == good_index
        run_figures = pass_fail_figures(run_pass, is_defect[report])
    return RTBaseline(threshold, target_escape, figures, run_figures, calibration, report)
