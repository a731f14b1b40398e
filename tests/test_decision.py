"""The pass/review/fail rule, its bounds and its calibration split (small arrays only)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import beta, binomtest

from soartlab import decision as rule
from soartlab.errors import DataError, SoartLabError

NAMES = ("good", "scratch", "dent")


def two_classes(seed=0, n_good=400, n_defect=400):
    """Good scores around 1, defect scores around 3: overlapping tails."""
    rng = np.random.default_rng(seed)
    scores = np.r_[rng.normal(1.0, 0.4, n_good), rng.normal(3.0, 0.6, n_defect)].clip(0)
    return scores, np.r_[np.zeros(n_good, bool), np.ones(n_defect, bool)]


@pytest.mark.parametrize(("k", "n"), [(0, 52), (1, 52), (3, 400), (0, 1), (7, 7), (12, 3000)])
def test_upper_bound_is_scipys_clopper_pearson(k, n):
    expected = binomtest(k, n).proportion_ci(0.95, method="exact").high
    assert rule.upper_bound(k, n) == pytest.approx(expected, abs=1e-12)
    # the same from the beta distribution (two-sided 95 %: the 97.5 % quantile)
    assert rule.upper_bound(k, n) == pytest.approx(
        1.0 if k == n else beta.ppf(0.975, k + 1, n - k), abs=1e-9
    )


def test_zero_escapes_in_52_parts_shows_its_bound():
    decision = np.array(["fail"] * 52 + ["pass"] * 10, dtype=object)
    labels = np.r_[np.ones(52, int), np.zeros(10, int)]
    figures = rule.figures(decision, labels, NAMES, 0).to_dict()
    assert figures["escape_rate"] == 0.0
    assert figures["escape_upper_95"] == pytest.approx(0.0685, abs=1e-4)
    assert figures["escape_upper_95_ppm"] == pytest.approx(68482.2, abs=1)
    assert rule.upper_bound(0, 0) is None


@pytest.mark.parametrize("target", [0.0, 0.005, 0.01, 0.05, 0.2])
def test_the_pass_threshold_meets_the_target_on_the_calibration_parts(target):
    scores, is_defect = two_classes()
    point = rule.fit_operating_point(scores, is_defect, target_escape=target)
    passed_defects = (scores[is_defect] <= point.pass_below).sum()
    assert passed_defects <= target * is_defect.sum()
    # the largest such threshold: one more defect would pass just above it
    next_defect = np.sort(scores[is_defect])[passed_defects]
    assert point.pass_below < next_defect
    assert (scores[(scores > point.pass_below) & (scores < next_defect)]).size == 0
    # fail side: at most the target share of good parts above fail_above
    assert (scores[~is_defect] > point.fail_above).sum() <= max(target * (~is_defect).sum(), 0)
    assert point.pass_below <= point.fail_above
    assert point.unknown_above == scores.max()


def test_a_looser_target_passes_more_and_reviews_less():
    scores, is_defect = two_classes()
    tight = rule.fit_operating_point(scores, is_defect, target_escape=0.005)
    loose = rule.fit_operating_point(scores, is_defect, target_escape=0.05)
    assert loose.pass_below > tight.pass_below and loose.fail_above < tight.fail_above


def test_separated_classes_have_no_review_band():
    scores = np.r_[np.linspace(0, 1, 50), np.linspace(5, 6, 50)]
    is_defect = np.r_[np.zeros(50, bool), np.ones(50, bool)]
    point = rule.fit_operating_point(scores, is_defect, target_escape=0.0)
    assert 1 < point.pass_below == point.fail_above < 5


def test_cost_ratio_gives_one_threshold_that_minimises_the_cost():
    scores, is_defect = two_classes()
    point = rule.fit_operating_point(scores, is_defect, escape_cost=20.0)
    assert point.rule == rule.RULE_COST and point.pass_below == point.fail_above

    def cost(t):
        return 20 * (scores[is_defect] <= t).sum() + (scores[~is_defect] > t).sum()

    grid = np.linspace(scores.min() - 1, scores.max() + 1, 2001)
    assert cost(point.pass_below) <= min(cost(t) for t in grid)


def test_bad_targets_and_scores_are_refused():
    scores, is_defect = two_classes()
    with pytest.raises(SoartLabError, match="target_escape"):
        rule.fit_operating_point(scores, is_defect, target_escape=1.5)
    with pytest.raises(DataError, match="no defects"):
        rule.fit_operating_point(scores, np.zeros_like(is_defect))
    with pytest.raises(DataError, match="finite"):
        rule.fit_operating_point(np.r_[scores[:-1], np.nan], is_defect)


def test_decide_bands_types_and_unknown():
    point = rule.OperatingPoint(rule.RULE_TARGET, 1.0, 2.0, 10.0, target_escape=0.01)
    scores = rule.PartScores(
        good_distance=np.array([0.5, 1.5, 2.5, 2.5, 30.0, np.nan, 0.5]),
        nearest_distance=np.array([0.5, 1.0, 2.0, 1.0, 20.0, np.nan, 0.5]),
        knn_class=np.array([0, 0, 1, 0, 2, -1, 2]),
        defect_class=np.array([1, 1, 1, 2, 2, -1, 2]),
    )
    reasons = np.array(["", "", "", "", "", "", "a value is not finite"], dtype=object)
    decision, defect_type, reason = rule.decide(scores, point, NAMES, 0, reasons)
    assert list(decision) == ["pass", "review", "fail", "fail", "fail", "review", "review"]
    # a fail whose kNN class is good takes the nearest defective reference's type
    assert list(defect_type) == ["", "", "scratch", "dent", "unknown", "", ""]
    assert reason[1] == rule.IN_REVIEW_BAND and reason[4] == rule.FAR_FROM_REFERENCES
    assert reason[6] == "a value is not finite" and reason[0] == reason[2] == ""


def test_an_unknown_part_never_passes_even_close_to_a_good_reference_score():
    point = rule.OperatingPoint(rule.RULE_TARGET, 1.0, 2.0, 3.0)
    scores = rule.PartScores(np.array([0.1]), np.array([3.5]), np.array([0]), np.array([1]))
    decision, defect_type, _ = rule.decide(scores, point, NAMES, 0)
    assert decision[0] == "fail" and defect_type[0] == "unknown"


def test_figures_per_type_and_review_share():
    decision = np.array(["pass", "fail", "review", "pass", "fail", "review", "fail"], dtype=object)
    labels = np.array([0, 0, 0, 1, 1, 2, 2])
    f = rule.figures(decision, labels, NAMES, 0)
    assert (f.n_good, f.n_defective, f.escapes, f.overkills, f.reviews) == (3, 4, 1, 1, 2)
    assert f.escape_rate == 0.25 and f.overkill_rate == pytest.approx(1 / 3)
    assert f.review_rate == pytest.approx(2 / 7) and f.good_reviewed == 1
    by_type = {row["type"]: row for row in f.per_type}
    assert by_type["scratch"]["escapes"] == 1 and by_type["scratch"]["recall"] == 0.5
    assert by_type["dent"]["recall"] == 1.0 and by_type["dent"]["count"] == 2


def test_calibration_and_reported_halves_are_disjoint_stratified_and_seeded():
    labels = np.repeat([0, 1, 2], [100, 40, 20])
    cal, rep = rule.calibration_split(labels, 0, seed=3)
    assert not set(cal) & set(rep) and len(cal) + len(rep) == len(labels)
    for cls in range(3):
        assert abs((labels[cal] == cls).sum() - (labels[rep] == cls).sum()) <= 1
    again, _ = rule.calibration_split(labels, 0, seed=3)
    other, _ = rule.calibration_split(labels, 0, seed=4)
    assert (again == cal).all() and set(other) != set(cal)
    # a class with a single held-out part: halved by good/defect instead
    lone = np.r_[labels, 5]
    cal, rep = rule.calibration_split(lone, 0, seed=3)
    assert len(cal) + len(rep) == len(lone)


def test_the_threshold_never_sees_the_reported_parts():
    scores, is_defect = two_classes(n_good=200, n_defect=200)
    labels = is_defect.astype(np.int64)
    cal, _ = rule.calibration_split(labels, 0, seed=0)
    calibration = np.zeros(len(labels), bool)
    calibration[cal] = True
    parts = rule.PartScores(scores, scores.copy(), labels, np.ones_like(labels))
    held_out = rule.HeldOutScores(parts, labels, calibration, 0)
    point = held_out.fit(0.01)
    # changing a reported part's score changes nothing in the threshold
    moved = scores.copy()
    moved[~calibration] = 0.0
    parts_moved = rule.PartScores(moved, moved.copy(), labels, np.ones_like(labels))
    assert rule.HeldOutScores(parts_moved, labels, calibration, 0).fit(0.01) == point
    # and the figures are computed on the reported parts only
    figures = held_out.reported(point, ("good", "defect"))
    assert figures.n_parts == (~calibration).sum()


def test_rescore_and_arrays_round_trip():
    scores, is_defect = two_classes(n_good=100, n_defect=100)
    labels = is_defect.astype(np.int64)
    calibration = np.arange(len(labels)) % 2 == 0
    parts = rule.PartScores(scores, scores, labels, np.ones_like(labels))
    held_out = rule.HeldOutScores(parts, labels, calibration, 0)
    again = rule.HeldOutScores.from_arrays(held_out.arrays(), 0, "test")
    for target in (0.005, 0.05, 0.2):
        point, figures = rule.rescore(held_out, ("good", "defect"), target)
        assert rule.rescore(again, ("good", "defect"), target) == (point, figures)
    tight = rule.rescore(held_out, ("good", "defect"), 0.0)[1]
    loose = rule.rescore(held_out, ("good", "defect"), 0.2)[1]
    assert loose.review_rate < tight.review_rate


def test_escape_overkill_curve_runs_from_all_failed_to_all_passed():
    scores, is_defect = two_classes(n_good=100, n_defect=100)
    labels = is_defect.astype(np.int64)
    parts = rule.PartScores(scores, scores, labels, np.ones_like(labels))
    held_out = rule.HeldOutScores(parts, labels, np.zeros(len(labels), bool), 0)
    thresholds, escape, overkill = rule.escape_overkill_curve(held_out)
    assert (np.diff(thresholds) > 0).all()
    assert (np.diff(escape) >= 0).all() and (np.diff(overkill) <= 0).all()
    assert escape[-1] == 1.0 and overkill[-1] == 0.0


def test_operating_point_round_trips_and_is_checked():
    point = rule.OperatingPoint(rule.RULE_TARGET, 1.0, 2.0, 3.0, target_escape=0.01)
    assert rule.OperatingPoint.from_dict(point.to_dict()) == point
    with pytest.raises(SoartLabError, match="fail_above"):
        rule.OperatingPoint.from_dict({**point.to_dict(), "fail_above": 0.5})
    with pytest.raises(SoartLabError, match="rule"):
        rule.OperatingPoint.from_dict({**point.to_dict(), "rule": "magic"})
    with pytest.raises(SoartLabError, match="pass_below"):
        rule.OperatingPoint.from_dict({**point.to_dict(), "pass_below": float("nan")})


def test_good_only_threshold_from_leave_one_out_distances():
    from soartlab.distances import EuclideanDistance

    rng = np.random.default_rng(0)
    good = rng.normal(size=(200, 4))
    loo = rule.leave_one_out_nearest(good, EuclideanDistance())
    # each part's nearest *other* part, by brute force
    d = np.linalg.norm(good[:, None] - good[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    assert np.allclose(loo, d.min(axis=1), atol=1e-5)
    point = rule.fit_good_only(loo, 95)
    assert point.rule == rule.RULE_GOOD_ONLY
    assert point.pass_below == pytest.approx(np.percentile(loo, 95))
    assert point.fail_above == point.unknown_above == loo.max()
    assert (loo > point.pass_below).mean() == pytest.approx(0.05, abs=0.01)
