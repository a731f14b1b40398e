"""The RT baseline: Taguchi's RT method against a direct computation, and that it
separates an obviously shifted defect class."""

import numpy as np
import pytest

from soartlab.errors import DataError
from soartlab.rt import (
    fit_unit_space,
    pass_fail_figures,
    rt_baseline,
    rt_distance,
    rt_features,
    rt_scores,
)

# Four good parts of three features, and two parts to score: a tiny hand example.
UNIT = np.array([[1.0, 2.0, 3.0], [1.2, 2.1, 2.9], [0.9, 1.8, 3.2], [1.1, 2.2, 2.8]])
PARTS = np.array([[1.0, 2.0, 3.1], [3.0, 0.5, 1.0]])


def _direct_rt(unit, parts):
    """The RT method written out term by term, one part at a time."""
    m = unit.mean(axis=0)
    r = sum(v * v for v in m)
    k = len(m)

    def y1_y2(x):
        L = sum(a * b for a, b in zip(m, x, strict=True))
        s_t = sum(v * v for v in x)
        s_beta = L * L / r
        v_e = (s_t - s_beta) / (k - 1)
        return L / r, np.sqrt(v_e)

    ys = np.array([y1_y2(x) for x in unit])
    mean = ys.mean(axis=0)
    cov = np.cov(ys.T)
    inv = np.linalg.inv(cov)
    out = []
    for x in parts:
        z = np.array(y1_y2(x)) - mean
        out.append(np.sqrt(z @ inv @ z))
    return np.array([y1_y2(x) for x in parts]), np.array(out)


def test_rt_matches_a_direct_computation_on_a_hand_example():
    features, distances = _direct_rt(UNIT, PARTS)
    unit = fit_unit_space(UNIT)
    np.testing.assert_allclose(unit.mean, UNIT.mean(axis=0))
    assert unit.divisor == pytest.approx(float(UNIT.mean(axis=0) @ UNIT.mean(axis=0)))
    np.testing.assert_allclose(rt_features(unit.mean, unit.divisor, PARTS), features, rtol=1e-10)
    np.testing.assert_allclose(rt_distance(unit, PARTS), distances, rtol=1e-6)
    labels = np.array([0, 0, 0, 0, 1, 1])
    train = np.vstack([UNIT, [[9.0, 9.0, 9.0], [0.0, 5.0, 0.0]]])
    np.testing.assert_allclose(rt_scores(train, labels, 0, PARTS), distances, rtol=1e-6)
    # the part close to the standard is nearer than the one that is not proportional to it
    assert distances[0] < distances[1]


def test_a_proportional_part_has_sensitivity_and_no_error():
    unit = fit_unit_space(UNIT)
    y1, y2 = rt_features(unit.mean, unit.divisor, 2.0 * unit.mean[None, :])[0]
    assert y1 == pytest.approx(2.0)
    assert y2 == pytest.approx(0.0, abs=1e-7)


def test_a_singular_unit_space_still_gives_finite_distances():
    # every good part a multiple of one vector: Y2 is 0 for all, the covariance singular
    base = np.array([1.0, 2.0, 3.0])
    good = np.outer([0.9, 1.0, 1.1, 1.2], base)
    scores = rt_scores(good, np.zeros(4, dtype=int), 0, np.vstack([base, [3.0, 2.0, 1.0]]))
    assert np.isfinite(scores).all()
    assert scores[1] > 1e3 * max(scores[0], 1e-9)


def test_rt_separates_an_obviously_shifted_defect_class():
    rng = np.random.default_rng(0)
    pattern = rng.uniform(0.2, 1.0, size=64)

    def parts(n, defect):
        gain = rng.uniform(0.8, 1.2, size=(n, 1))
        x = gain * pattern + rng.normal(0, 0.02, size=(n, 64))
        if defect:
            x[:, 10:20] += 0.8  # a bright patch the good parts never have
        return x

    train = np.vstack([parts(200, False), parts(50, True)])
    labels = np.r_[np.zeros(200, int), np.ones(50, int)]
    test = np.vstack([parts(100, False), parts(100, True)])
    test_labels = np.r_[np.zeros(100, int), np.ones(100, int)]
    scores = rt_scores(train, labels, 0, test)
    assert scores[100:].min() > scores[:100].max()
    baseline = rt_baseline(train, labels, 0, test, test_labels, target_escape=0.0)
    assert baseline.figures["escape_rate"] == 0.0
    assert baseline.figures["overkill_rate"] < 0.05
    assert baseline.figures["n_good"] + baseline.figures["n_defective"] == 100


def test_a_part_that_is_not_finite_is_never_passed():
    scores = rt_scores(
        UNIT, np.zeros(4, int), 0, np.array([[np.nan, 1.0, 1.0], [1e308, 1e308, 1.0]])
    )
    assert np.isinf(scores).all()


def test_the_threshold_is_the_decision_rule_s_on_the_run_s_calibration_half():
    """RT and the run share one rule: the same halves for the same seed, and the
    threshold `decision.fit_operating_point` sets on the calibration half."""
    from soartlab import decision

    rng = np.random.default_rng(0)
    good = rng.normal(1.0, 0.05, (60, 5)) + 1.0
    test_labels = np.r_[np.zeros(40, int), np.ones(40, int)]
    test_x = np.r_[rng.normal(1.0, 0.05, (40, 5)) + 1.0, rng.normal(1.0, 0.4, (40, 5)) + 1.0]
    baseline = rt_baseline(good, np.zeros(60, int), 0, test_x, test_labels, seed=5)
    calibration, report = decision.calibration_split(test_labels, 0, 5)
    assert baseline.calibration_rows.tolist() == calibration.tolist()
    assert baseline.report_rows.tolist() == report.tolist()
    scores = rt_scores(good, np.zeros(60, int), 0, test_x)
    point = decision.fit_operating_point(
        scores[calibration], test_labels[calibration] == 1, target_escape=0.005
    )
    assert baseline.threshold == point.pass_below
    passed = scores[report] <= baseline.threshold
    assert baseline.figures["escapes"] == int((passed & (test_labels[report] == 1)).sum())


def test_pass_fail_figures_count_escapes_and_overkills():
    figures = pass_fail_figures(
        judged_pass=np.array([True, True, False, False, True]),
        is_defect=np.array([False, True, False, True, True]),
    )
    assert figures["escapes"] == 2 and figures["escape_rate"] == pytest.approx(2 / 3)
    assert figures["overkills"] == 1 and figures["overkill_rate"] == pytest.approx(1 / 2)
    assert figures["accuracy"] == pytest.approx(2 / 5)


def test_too_few_good_parts_are_refused():
    with pytest.raises(DataError, match="at least 3 good parts"):
        fit_unit_space(UNIT[:2])
    with pytest.raises(DataError, match="mean vector is zero"):
        fit_unit_space(np.zeros((4, 3)))
