"""The inspection decision: pass, review or fail, from a per-part score, at an operating
point chosen for a target escape rate, with honest held-out figures.

The score of a part is its distance to the nearest *good* reference (larger = more
defective), under the run's evaluation distance (`Distance.knn`). Any other per-part score
with that orientation (e.g. an RT-method distance to the unit space) goes through the same
rule: `fit_operating_point(scores, is_defect, ...)`.

The rule (`OperatingPoint`, applied by `decide`):

- **pass** when the score is at most ``pass_below``: the largest threshold at which at most
  ``target_escape`` of the calibration defects would pass;
- **fail** when the score is above ``fail_above``: the smallest threshold above which at
  most ``target_escape`` of the calibration good parts lie (never below ``pass_below``);
- **review** in between: scores where neither good nor defective parts are rare enough
  to decide alone. The band is empty when the two classes are well apart;
- **unknown** (a fail whose defect type is ``unknown``): a part whose nearest reference
  of any class is farther than ``unknown_above``, the largest such distance among the
  calibration parts. Such a part resembles nothing the run has seen; it never passes.

The calibration parts are a stratified half of the run's held-out rows (`calibration_split`,
seeded); the figures (`DecisionFigures`) are computed on the other half only, so the
threshold never sees the parts that report on it. Escape and overkill rates come with
exact binomial (Clopper–Pearson) 95 % upper bounds, so 0 escapes in 52 defects reads
"0 %, at most 6.8 %".

With good parts only (no defects to calibrate on), `fit_good_only` takes the threshold
from the good parts' own leave-one-out nearest-good distances: pass up to the
``percentile``-th, review up to the largest, beyond it unknown. No escape rate can be
measured until defects are added.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from soartlab.errors import DataError, SoartLabError

DEFAULT_TARGET_ESCAPE = 0.005  # at most 0.5 % of defects passed (on the calibration parts)
DEFAULT_GOOD_PERCENTILE = 99.0  # good-only runs: pass up to this percentile of good parts
CONFIDENCE = 0.95  # the level of the upper bounds
PPM = 1_000_000

RULE_TARGET = "target_escape"  # thresholds for a maximum escape rate
RULE_COST = "cost_ratio"  # one threshold minimising escape_cost * escapes + overkills
RULE_GOOD_ONLY = "good_only"  # thresholds from good parts' leave-one-out distances
RULES = (RULE_TARGET, RULE_COST, RULE_GOOD_ONLY)

PASS, REVIEW, FAIL = "pass", "review", "fail"
FLAGGED = (FAIL, REVIEW)  # the decisions a person looks at
UNKNOWN = "unknown"  # the defect type of a part far from every reference

# The reason of a part decided from its score alone (other reasons: lot checks).
IN_REVIEW_BAND = "score in the review band"
FAR_FROM_REFERENCES = "farther from every reference than any calibration part"

NO_ESCAPE_RATE = "Good parts only: no escape rate can be measured until defect samples are added."


@dataclass(frozen=True)
class OperatingPoint:
    """Where pass, review and fail begin on the score (distance to the nearest good)."""

    rule: str  # one of RULES
    pass_below: float  # score <= pass_below → pass
    fail_above: float  # score > fail_above → fail (>= pass_below); between: review
    unknown_above: float  # nearest distance to any reference above this → fail, unknown
    target_escape: float | None = None  # RULE_TARGET (and the fail side of the band)
    escape_cost: float | None = None  # RULE_COST: cost of one escape in overkills
    percentile: float | None = None  # RULE_GOOD_ONLY

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "pass_below": self.pass_below,
            "fail_above": self.fail_above,
            "unknown_above": self.unknown_above,
            "target_escape": self.target_escape,
            "escape_cost": self.escape_cost,
            "percentile": self.percentile,
        }

    @classmethod
    def from_dict(cls, raw: Any, source: str = "the operating point") -> OperatingPoint:
        """Checked: a known rule, finite ordered thresholds, a target in [0, 1)."""
        if not isinstance(raw, dict) or raw.get("rule") not in RULES:
            raise SoartLabError(f"{source}: 'rule' must be one of {', '.join(RULES)}.")
        values = {}
        for name in ("pass_below", "fail_above", "unknown_above"):
            value = raw.get(name)
            if not _is_number(value) or not math.isfinite(value):
                raise SoartLabError(
                    f"{source}: '{name}' must be a finite number; got {value!r:.40}."
                )
            values[name] = float(value)
        if values["fail_above"] < values["pass_below"]:
            raise SoartLabError(f"{source}: 'fail_above' must be at least 'pass_below'.")
        optional = {}
        for name, low, high in (
            ("target_escape", 0.0, 1.0),
            ("escape_cost", 0.0, 1e9),
            ("percentile", 0.0, 100.0),
        ):
            value = raw.get(name)
            if value is not None and not (_is_number(value) and low <= value <= high):
                raise SoartLabError(
                    f"{source}: '{name}' must be a number from {low:g} to {high:g} or null; "
                    f"got {value!r:.40}."
                )
            optional[name] = None if value is None else float(value)
        return cls(raw["rule"], **values, **optional)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_target(target_escape: float, name: str = "target_escape") -> float:
    """`SoartLabError` unless ``target_escape`` is a number in [0, 1)."""
    if not _is_number(target_escape) or not 0.0 <= target_escape < 1.0:
        raise SoartLabError(f"{name} must be a number from 0 to below 1; got {target_escape!r}.")
    return float(target_escape)


def upper_bound(k: int, n: int, confidence: float = CONFIDENCE) -> float | None:
    """The exact binomial (Clopper–Pearson) upper end of the ``confidence`` interval of a
    rate of ``k`` events in ``n`` trials (scipy's ``binomtest(k, n).proportion_ci``);
    None when ``n`` is 0 (nothing measured)."""
    if n == 0:
        return None
    from scipy.stats import binomtest

    return float(binomtest(int(k), int(n)).proportion_ci(confidence, method="exact").high)


def _midpoint_below(value: float, others: np.ndarray) -> float:
    """A threshold just below ``value``: halfway to the largest of ``others`` under it
    (to 0, or just below ``value``, when none is)."""
    below = others[others < value]
    low = below.max() if len(below) else min(0.0, value)
    return float((low + value) / 2) if value > low else float(np.nextafter(value, -np.inf))


def _midpoint_above(value: float, others: np.ndarray) -> float:
    """A threshold at or above ``value``, halfway to the smallest of ``others`` above it."""
    above = others[others > value]
    return float((value + above.min()) / 2) if len(above) else float(value)


def _pass_threshold(scores: np.ndarray, is_defect: np.ndarray, target: float) -> float:
    """The largest threshold passing at most ``target`` of the defects (score <= t)."""
    defects = np.sort(scores[is_defect])
    allowed = math.floor(target * len(defects) + 1e-9)
    if allowed >= len(defects):
        return float(scores.max())
    return _midpoint_below(defects[allowed], scores)


def _fail_threshold(scores: np.ndarray, is_defect: np.ndarray, target: float) -> float:
    """The smallest threshold with at most ``target`` of the good parts above it."""
    good = np.sort(scores[~is_defect])[::-1]
    if len(good) == 0:
        return -math.inf
    allowed = math.floor(target * len(good) + 1e-9)
    if allowed >= len(good):
        return float(scores.min())
    return _midpoint_above(good[allowed], scores)


def _check_scores(scores, is_defect=None) -> tuple[np.ndarray, np.ndarray | None]:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) == 0 or not np.isfinite(scores).all():
        raise DataError("An operating point needs finite scores of at least one part.")
    if is_defect is not None:
        is_defect = np.asarray(is_defect, dtype=bool).reshape(-1)
        if is_defect.shape != scores.shape:
            raise DataError(
                f"{len(scores)} scores but {len(is_defect)} labels: one label per part."
            )
    return scores, is_defect


def fit_operating_point(
    scores,
    is_defect,
    *,
    target_escape: float | None = DEFAULT_TARGET_ESCAPE,
    escape_cost: float | None = None,
    nearest=None,
) -> OperatingPoint:
    """The operating point for calibration parts: ``scores`` (N,) (larger = more
    defective), ``is_defect`` (N,) bool. ``target_escape``: the most escapes allowed
    (share of defects passed), also the most good parts allowed beyond the fail threshold;
    or ``escape_cost`` (one escape costs as much as that many overkills): one threshold
    minimising the calibration cost, no review band. ``nearest`` (N,): the parts' distance
    to the nearest reference of any class (default ``scores``); its largest value is the
    unknown threshold. Without defects, see `fit_good_only`."""
    scores, is_defect = _check_scores(scores, is_defect)
    if not is_defect.any():
        raise DataError(
            "The calibration parts hold no defects: an escape rate cannot be set. " + NO_ESCAPE_RATE
        )
    nearest = scores if nearest is None else np.asarray(nearest, dtype=np.float64)
    unknown = float(np.max(nearest))
    if escape_cost is not None:
        if not _is_number(escape_cost) or not 0 < escape_cost <= 1e9:
            raise SoartLabError(f"escape_cost must be a number above 0; got {escape_cost!r}.")
        threshold = _cheapest_threshold(scores, is_defect, float(escape_cost))
        return OperatingPoint(RULE_COST, threshold, threshold, unknown, escape_cost=escape_cost)
    target = check_target(DEFAULT_TARGET_ESCAPE if target_escape is None else target_escape)
    pass_below = _pass_threshold(scores, is_defect, target)
    fail_above = max(pass_below, _fail_threshold(scores, is_defect, target))
    return OperatingPoint(RULE_TARGET, pass_below, fail_above, unknown, target_escape=target)


def _cheapest_threshold(scores: np.ndarray, is_defect: np.ndarray, escape_cost: float) -> float:
    """The threshold (between sorted scores) minimising escape_cost·escapes + overkills."""
    order = np.sort(np.unique(scores))
    candidates = np.concatenate(
        [
            [order[0] / 2 if order[0] > 0 else order[0] - 1],
            (order[:-1] + order[1:]) / 2,
            [order[-1]],
        ]
    )
    defect_scores, good_scores = np.sort(scores[is_defect]), np.sort(scores[~is_defect])
    escapes = np.searchsorted(defect_scores, candidates, side="right")
    overkills = len(good_scores) - np.searchsorted(good_scores, candidates, side="right")
    return float(candidates[np.argmin(escape_cost * escapes + overkills)])


def leave_one_out_nearest(references, distance) -> np.ndarray:
    """Each reference row's distance to its nearest *other* row (N,), under ``distance``
    (`Distance.knn` with k = 2, dropping the row itself)."""
    references = np.asarray(references)
    if len(references) < 2:
        raise DataError("Leave-one-out distances need at least 2 good parts.")
    idx, d = distance.knn(references, references, 2)
    own = idx[:, 0] == np.arange(len(references))
    return np.where(own, d[:, 1], d[:, 0]).astype(np.float64)


def fit_good_only(loo_distances, percentile: float = DEFAULT_GOOD_PERCENTILE) -> OperatingPoint:
    """Good parts only: pass up to the ``percentile``-th of the good parts' leave-one-out
    nearest-good distances ``loo_distances`` (N,), review up to the largest, beyond it a
    fail of unknown type."""
    scores, _ = _check_scores(loo_distances)
    if not _is_number(percentile) or not 0 < percentile <= 100:
        raise SoartLabError(f"The good-only percentile must be in (0, 100]; got {percentile!r}.")
    largest = float(scores.max())
    pass_below = float(np.percentile(scores, percentile))
    return OperatingPoint(
        RULE_GOOD_ONLY, pass_below, largest, largest, percentile=float(percentile)
    )


@dataclass(frozen=True)
class PartScores:
    """What the rule looks at for N parts (all (N,); NaN where a part was not scored)."""

    good_distance: np.ndarray  # to the nearest good reference: the score
    nearest_distance: np.ndarray  # to the nearest reference of any class
    knn_class: np.ndarray  # int64, the kNN class (-1: not scored)
    defect_class: np.ndarray  # int64, class of the nearest defect reference (-1: none)

    def __len__(self) -> int:
        return len(self.good_distance)

    def take(self, rows) -> PartScores:
        return PartScores(
            self.good_distance[rows],
            self.nearest_distance[rows],
            self.knn_class[rows],
            self.defect_class[rows],
        )


def decide(
    scores: PartScores,
    point: OperatingPoint,
    label_names,
    good_index: int,
    unscored_reason=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply ``point`` to ``scores``. ``unscored_reason`` (N,) object: a non-empty reason
    (lot check, non-finite numbers) makes a part `review` whatever its score. Returns
    ``(decision (N,), defect_type (N,), reason (N,))`` as object arrays: `pass` /
    `review` / `fail`; the defect type of a fail (the kNN class, or the nearest defect
    reference's class when the kNN class is good; `unknown` far from every reference),
    else empty; the reason of every decision but a plain pass or fail."""
    n = len(scores)
    reason = np.full(n, "", dtype=object)
    if unscored_reason is not None:
        reason[:] = np.asarray(unscored_reason, dtype=object)
    score, nearest = scores.good_distance, scores.nearest_distance
    with np.errstate(invalid="ignore"):
        unscorable = (reason != "") | ~np.isfinite(score) | ~np.isfinite(nearest)
        unknown = ~unscorable & (nearest > point.unknown_above)
        passed = ~unscorable & ~unknown & (score <= point.pass_below)
        failed = ~unscorable & (unknown | (score > point.fail_above))
    decision = np.full(n, REVIEW, dtype=object)
    decision[passed] = PASS
    decision[failed] = FAIL
    reason[(decision == REVIEW) & (reason == "")] = IN_REVIEW_BAND
    reason[unknown] = FAR_FROM_REFERENCES
    names = np.array([*label_names, ""], dtype=object)  # -1 → ""
    knn = np.where(scores.knn_class == good_index, scores.defect_class, scores.knn_class)
    defect_type = np.where(failed, names[knn], "").astype(object)
    defect_type[unknown] = UNKNOWN
    return decision, defect_type, reason


@dataclass(frozen=True)
class DecisionFigures:
    """The decision's figures on labelled parts (the reported half, or a labelled lot)."""

    n_parts: int
    n_good: int
    n_defective: int
    escapes: int  # defects passed
    overkills: int  # good parts failed
    reviews: int  # parts sent to review
    escape_rate: float | None  # None without defects
    escape_upper_95: float | None
    overkill_rate: float | None  # None without good parts
    overkill_upper_95: float | None
    review_rate: float
    good_reviewed: int = 0  # good parts sent to review (not passed, not overkill)
    per_type: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "n_parts": self.n_parts,
            "n_good": self.n_good,
            "n_defective": self.n_defective,
            "escapes": self.escapes,
            "overkills": self.overkills,
            "reviews": self.reviews,
            "good_reviewed": self.good_reviewed,
            "escape_rate": self.escape_rate,
            "escape_upper_95": self.escape_upper_95,
            "overkill_rate": self.overkill_rate,
            "overkill_upper_95": self.overkill_upper_95,
            "review_rate": self.review_rate,
            "per_type": [dict(row) for row in self.per_type],
        }
        for name in ("escape", "overkill"):
            for suffix in ("rate", "upper_95"):
                value = out[f"{name}_{suffix}"]
                out[f"{name}_{suffix}_ppm"] = None if value is None else round(value * PPM, 1)
        return out


def figures(decision, labels, label_names, good_index: int) -> DecisionFigures:
    """Escape (defects passed), overkill (good parts failed; a review is neither) and
    review share of ``decision`` (N,) on parts of known class ``labels`` (N,) int, with
    exact 95 % upper bounds; per defect type: count, escapes, recall (share not passed)."""
    decision = np.asarray(decision, dtype=object)
    labels = np.asarray(labels, dtype=np.int64)
    good = labels == good_index
    n_good, n_def = int(good.sum()), int((~good).sum())
    escapes = int(((decision == PASS) & ~good).sum())
    overkills = int(((decision == FAIL) & good).sum())
    reviews = int((decision == REVIEW).sum())
    per_type = []
    for cls, name in enumerate(label_names):
        rows = labels == cls
        if cls == good_index or not rows.any():
            continue
        count = int(rows.sum())
        passed = int((decision[rows] == PASS).sum())
        per_type.append(
            {
                "type": name,
                "count": count,
                "escapes": passed,
                "reviewed": int((decision[rows] == REVIEW).sum()),
                "recall": (count - passed) / count,
                "escape_upper_95": upper_bound(passed, count),
            }
        )
    return DecisionFigures(
        n_parts=len(labels),
        n_good=n_good,
        n_defective=n_def,
        escapes=escapes,
        overkills=overkills,
        reviews=reviews,
        escape_rate=escapes / n_def if n_def else None,
        escape_upper_95=upper_bound(escapes, n_def),
        overkill_rate=overkills / n_good if n_good else None,
        overkill_upper_95=upper_bound(overkills, n_good),
        review_rate=reviews / len(labels) if len(labels) else 0.0,
        good_reviewed=int(((decision == REVIEW) & good).sum()),
        per_type=tuple(per_type),
    )


def calibration_split(labels, good_index: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(calibration positions, reported positions) of held-out parts with classes
    ``labels`` (N,): a stratified half each, drawn by `data.split_indices` with ``seed``.
    Stratified by class when every class has 2 parts or more, else by good/defect.
    `DataError` when even that cannot be split (a single good or defective part)."""
    from soartlab.data import split_indices

    labels = np.asarray(labels, dtype=np.int64)
    try:
        reported, calibration = split_indices(labels, test_size=0.5, seed=seed)
    except DataError:
        binary = (labels != good_index).astype(np.int64)
        try:
            reported, calibration = split_indices(binary, test_size=0.5, seed=seed)
        except DataError as exc:
            raise DataError(
                f"The {len(labels)} held-out parts cannot be halved for calibration and "
                f"report: {exc} Use more data or a larger test_size."
            ) from None
    return calibration, reported


@dataclass(frozen=True)
class HeldOutScores:
    """The held-out parts' scores, split into calibration and reported parts: enough to
    fit an operating point and compute its figures again without embedding anything."""

    scores: PartScores  # of every held-out part
    labels: np.ndarray  # (N,) int64 classes
    calibration: np.ndarray  # (N,) bool: True for a calibration part
    good_index: int = 0  # the good class among ``labels``

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays as stored in the run folder (see `from_arrays`)."""
        s = self.scores
        return {
            "good_distance": s.good_distance.astype(np.float64),
            "nearest_distance": s.nearest_distance.astype(np.float64),
            "knn_class": s.knn_class.astype(np.int64),
            "defect_class": s.defect_class.astype(np.int64),
            "labels": self.labels.astype(np.int64),
            "calibration": self.calibration.astype(np.uint8),
        }

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, np.ndarray], good_index: int, source: str
    ) -> HeldOutScores:
        names = ("good_distance", "nearest_distance", "knn_class", "defect_class", "labels")
        try:
            columns = [np.asarray(arrays[name]) for name in (*names, "calibration")]
        except KeyError as exc:
            raise SoartLabError(f"{source} lacks the held-out scores ({exc}).") from None
        n = len(columns[0])
        if any(c.shape != (n,) for c in columns):
            raise SoartLabError(f"{source}: the held-out score arrays differ in length.")
        scores = PartScores(
            columns[0].astype(np.float64),
            columns[1].astype(np.float64),
            columns[2].astype(np.int64),
            columns[3].astype(np.int64),
        )
        return cls(scores, columns[4].astype(np.int64), columns[5].astype(bool), good_index)

    def fit(
        self,
        target_escape: float | None = DEFAULT_TARGET_ESCAPE,
        escape_cost: float | None = None,
    ) -> OperatingPoint:
        """`fit_operating_point` on the calibration parts only."""
        cal = self.scores.take(self.calibration)
        finite = np.isfinite(cal.good_distance) & np.isfinite(cal.nearest_distance)
        return fit_operating_point(
            cal.good_distance[finite],
            self.is_defect(self.labels[self.calibration][finite]),
            target_escape=target_escape,
            escape_cost=escape_cost,
            nearest=cal.nearest_distance[finite],
        )

    def is_defect(self, labels: np.ndarray) -> np.ndarray:
        return labels != self.good_index

    def reported(self, point: OperatingPoint, label_names) -> DecisionFigures:
        """The figures of ``point`` on the reported parts only."""
        rows = ~self.calibration
        decision, _, _ = decide(self.scores.take(rows), point, label_names, self.good_index)
        return figures(decision, self.labels[rows], label_names, self.good_index)


def rescore(
    held_out: HeldOutScores,
    label_names,
    target_escape: float | None = DEFAULT_TARGET_ESCAPE,
    escape_cost: float | None = None,
) -> tuple[OperatingPoint, DecisionFigures]:
    """A new target → its operating point and reported figures, from cached scores only
    (a slider's callback: no embedding, ~1 ms for thousands of parts)."""
    point = held_out.fit(target_escape, escape_cost)
    return point, held_out.reported(point, label_names)


def escape_overkill_curve(
    held_out: HeldOutScores, points: int = 200
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, escape rate, overkill rate) of a single threshold (no review band)
    swept over the reported parts' scores: the trade-off an operating point sits on."""
    rows = ~held_out.calibration & np.isfinite(held_out.scores.good_distance)
    score = held_out.scores.good_distance[rows]
    defect = held_out.is_defect(held_out.labels[rows])
    thresholds = np.unique(np.quantile(score, np.linspace(0, 1, points))) if len(score) else score
    defects, goods = np.sort(score[defect]), np.sort(score[~defect])
    escape = np.searchsorted(defects, thresholds, side="right") / max(len(defects), 1)
    overkill = 1 - np.searchsorted(goods, thresholds, side="right") / max(len(goods), 1)
    return thresholds, escape, overkill


def part_scores(
    ref_emb: np.ndarray,
    ref_labels: np.ndarray,
    emb: np.ndarray,
    distance,
    good_index: int,
    *,
    k: int = 1,
    n_classes: int | None = None,
) -> tuple[PartScores, np.ndarray]:
    """The rule's view of parts with embeddings ``emb`` (N, e) against the references
    ``ref_emb`` (R, e) with classes ``ref_labels`` (R,), under ``distance`` (`Distance.knn`):
    `PartScores` (the kNN class by ``k`` neighbours, the distances to the nearest
    reference, the nearest good and the nearest defective one, and the latter's class) and
    the nearest reference's row (N,) int64."""
    from soartlab.evaluation import classify

    ref_labels = np.asarray(ref_labels, dtype=np.int64)
    n = len(emb)
    nearest_index, nearest = distance.knn(emb, ref_emb, 1)
    nearest_index, nearest = nearest_index[:, 0], np.asarray(nearest[:, 0], dtype=np.float64)
    if k == 1:
        knn_class = ref_labels[nearest_index]
    else:
        knn_class, _ = classify(ref_emb, ref_labels, emb, distance, k=k, n_classes=n_classes)
    good = ref_labels == good_index
    good_distance = np.full(n, np.nan)
    defect_class = np.full(n, -1, dtype=np.int64)
    if good.any():
        _, d = distance.knn(emb, ref_emb[good], 1)
        good_distance = np.asarray(d[:, 0], dtype=np.float64)
    if (~good).any():
        idx, _ = distance.knn(emb, ref_emb[~good], 1)
        defect_class = ref_labels[~good][idx[:, 0]]
    scores = PartScores(good_distance, nearest, knn_class.astype(np.int64), defect_class)
    return scores, nearest_index.astype(np.int64)
