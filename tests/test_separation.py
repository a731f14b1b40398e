import numpy as np
import pytest
import torch

from soartlab.errors import SoartLabError
from soartlab.separation import SeparationReport, separation_report


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_perfect_separation():
    report = separation_report([0.1, 0.2, 0.3], [1.0, 1.5, 2.0, 3.0], bins=10)
    assert isinstance(report, SeparationReport)
    assert report.roc_auc == 1.0
    assert report.overlap == 0.0
    assert 0.3 <= report.threshold < 1.0
    assert report.escape_rate == 0.0 and report.overkill_rate == 0.0
    assert (report.n_matched, report.n_unmatched) == (3, 4)
    assert report.to_dict()["roc_auc"] == 1.0


def test_partial_overlap_values():
    matched = np.array([0.0, 0.1, 0.2, 0.6])
    unmatched = np.array([0.5, 0.7, 0.8, 0.9])
    report = separation_report(matched, unmatched, bins=10)
    # 15 of the 16 (matched, unmatched) pairs are ordered correctly
    assert report.roc_auc == pytest.approx(15 / 16)
    # best cut: d <= 0.2 (one matched called unmatched) or d <= 0.6 (one unmatched called matched)
    assert report.escape_rate + report.overkill_rate == pytest.approx(0.25)
    assert report.threshold in (0.2, 0.6)
    assert report.escape_rate == np.mean(unmatched <= report.threshold)
    assert report.overkill_rate == np.mean(matched > report.threshold)
    # bins of width 0.09: 0.5 and 0.6 fall in different bins, so the histograms share none
    assert report.overlap == 0.0
    assert separation_report(matched, unmatched, bins=1).overlap == pytest.approx(1.0)


def test_overlap_of_identical_distributions_is_one(rng):
    values = rng.normal(size=500)
    report = separation_report(values, values.copy())
    assert report.overlap == pytest.approx(1.0)
    assert report.roc_auc == pytest.approx(0.5)


def test_overlap_matches_manual_histograms(rng):
    matched, unmatched = rng.normal(0, 1, 300), rng.normal(1.5, 1, 500)
    edges = np.histogram_bin_edges(np.concatenate([matched, unmatched]), bins=20)
    p = np.histogram(matched, edges)[0] / 300
    q = np.histogram(unmatched, edges)[0] / 500
    report = separation_report(torch.tensor(matched), unmatched, bins=20)
    assert report.overlap == pytest.approx(np.minimum(p, q).sum())
    assert 0.1 < report.overlap < 0.9
    assert 0.8 < report.roc_auc < 0.9


def test_all_equal_values_are_fine():
    report = separation_report(np.full(5, 0.3), np.full(4, 0.3))
    assert report.roc_auc == 0.5
    assert report.overlap == pytest.approx(1.0)
    assert report.threshold == 0.3
    assert report.escape_rate + report.overkill_rate == pytest.approx(1.0)


def test_bad_inputs():
    with pytest.raises(SoartLabError, match="matched is empty"):
        separation_report([], [1.0])
    with pytest.raises(SoartLabError, match="unmatched is empty"):
        separation_report([1.0], np.array([]))
    with pytest.raises(SoartLabError, match="unmatched holds 1 non-finite"):
        separation_report([1.0], [np.nan, 2.0])
    with pytest.raises(SoartLabError, match="bins"):
        separation_report([1.0], [2.0], bins=0)


def test_roc_auc_equals_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    matched = np.round(rng.normal(0.0, 1.0, 500), 1)  # rounding makes many ties
    unmatched = np.round(rng.normal(1.0, 1.0, 700), 1)
    report = separation_report(matched, unmatched)
    truth = np.r_[np.ones(500), np.zeros(700)]
    assert report.roc_auc == pytest.approx(
        roc_auc_score(truth, -np.r_[matched, unmatched]), abs=1e-12
    )
