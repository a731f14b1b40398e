"""Lot checks before scoring: wrong scale refused, outliers and overflows sent to review,
drift reported; an honest lot with natural variation passes the checks."""

from __future__ import annotations

import numpy as np
import pytest

from soartlab.data import Normalization
from soartlab.errors import DataError
from soartlab.lotcheck import (
    DRIFT_SD_FLOOR,
    NOT_FINITE_INPUT,
    NOT_FINITE_VALUE,
    OUT_OF_RANGE,
    InputStats,
    check_lot,
    check_scale,
    combine,
)


@pytest.fixture(scope="module")
def images():
    """Demo-like 0–1 images (flattened), split into training rows and an honest lot."""
    from soartlab.demo import make_arrays

    X, _ = make_arrays(600, seed=1)
    X = X.reshape(len(X), -1).astype(np.float64)
    return X[:400], X[400:]


def test_an_honest_lot_is_not_refused_nor_flagged(images):
    train, lot = images
    stats = InputStats.fit(train, image=True)
    check = check_lot(lot, stats, Normalization.fit(train), input_shape=(36, 39))
    assert check.n_flagged == 0 and not check.drift
    assert "0 of 200 parts" in check.summary()


@pytest.mark.parametrize("factor", [255.0, 1 / 255])
def test_a_lot_on_another_scale_is_refused_naming_both_scales(images, factor):
    train, lot = images
    stats = InputStats.fit(train, image=True)
    with pytest.raises(DataError, match=r"another scale.*values run from .* trained on values"):
        check_lot(lot * factor, stats)


def test_a_shifted_lot_is_refused(images):
    train, lot = images
    with pytest.raises(DataError, match="another scale"):
        check_scale(lot + 100.0, InputStats.fit(train, image=True))


def test_a_lot_of_blank_parts_is_judged_by_where_its_values_sit(images):
    """Flat parts have no spread to compare: on the training scale they are scored (and
    checked one by one); flat at 255 they are plainly on another scale."""
    train, _ = images
    stats = InputStats.fit(train, image=True)
    blank = np.tile(np.array([[0.0], [0.16], [0.31]]), (1, train.shape[1]))
    assert check_scale(blank, stats)[1] == 0.0
    with pytest.raises(DataError, match="another scale"):
        check_scale(blank * 255.0 + 255.0, stats)


def test_a_few_outlying_parts_go_to_review_not_refusal(images):
    train, lot = images
    lot = lot.copy()
    lot[[3, 7]] *= 255.0  # two parts exported at 0–255 in an otherwise honest lot
    lot[11, 5] = 4.0  # one pixel far out of the images' 0–1
    check = check_lot(lot, InputStats.fit(train, image=True), Normalization.fit(train))
    assert set(np.flatnonzero(check.reasons != "")) == {3, 7, 11}
    assert set(check.reasons[[3, 7, 11]]) == {OUT_OF_RANGE}


def test_non_finite_values_before_or_after_normalisation(images):
    train, lot = images
    lot = lot[:5].copy()
    lot[0, 0] = np.nan
    lot[1, 2] = np.inf
    lot[2, :] = 3.4e38  # finite in the file, inf once normalised in float32
    check = check_lot(lot, InputStats.fit(train, image=True), Normalization.fit(train))
    assert list(check.reasons[:3]) == [NOT_FINITE_VALUE, NOT_FINITE_VALUE, NOT_FINITE_INPUT]
    assert (check.reasons[3:] == "").all()


def test_drift_names_the_features_that_moved(images):
    train, lot = images
    lot = lot.copy()
    lot[:, 40] += 0.3  # one pixel brighter in the whole lot
    check = check_lot(lot, InputStats.fit(train, image=True), input_shape=(36, 39))
    assert check.drift[0].feature == "pixel (1, 1)" and check.drift[0].shift_sd > 0.5
    assert "pixel (1, 1)" in check.summary()


def test_drift_of_a_pixel_constant_in_training_is_measured_on_the_parts_spread(images):
    """A pixel at exactly 0 in every training part has an SD of 0: its drift is measured
    against `DRIFT_SD_FLOOR` of the typical part's spread, so a faint lot value is no
    drift at all and a bright one is a large, finite one."""
    train, lot = images
    train, lot = train.copy(), lot.copy()
    train[:, 0] = 0.0
    stats = InputStats.fit(train, image=True)
    lot[:, 0] = 0.001
    check = check_lot(lot, stats, input_shape=(36, 39))
    assert all(d.index != 0 for d in check.drift)
    lot[:, 0] = 0.3
    check = check_lot(lot, stats, input_shape=(36, 39))
    top = check.drift[0]
    assert (top.index, top.pixel, top.column) == (0, (0, 0), None)
    expected = 0.3 / (DRIFT_SD_FLOOR * stats.part_spread)
    assert top.shift_sd == pytest.approx(expected)
    assert 1 < top.shift_sd < 1000


def test_drift_of_a_named_column_carries_its_name():
    rng = np.random.default_rng(1)
    train = np.c_[rng.normal(0, 1, 300), rng.normal(5, 1, 300)]
    lot = np.c_[rng.normal(0, 1, 200), rng.normal(8, 1, 200)]
    check = check_lot(lot, InputStats.fit(train), feature_names=["幅", "高さ"])
    assert [(d.column, d.pixel, d.index) for d in check.drift] == [("高さ", None, 1)]


def test_the_checks_of_a_lot_s_chunks_combine_into_the_whole_lot_s(images):
    train, lot = images
    lot = lot.copy()
    lot[:, 40] += 0.3
    lot[3, 7] = 50.0  # out of range
    stats = InputStats.fit(train, image=True)
    whole = check_lot(lot, stats, input_shape=(36, 39))
    chunks = [
        check_lot(lot[i : i + 17], stats, input_shape=(36, 39)) for i in range(0, len(lot), 17)
    ]
    combined = combine(chunks, stats, input_shape=(36, 39))
    assert combined.summary() == whole.summary()
    assert list(combined.reasons) == list(whole.reasons)
    assert combined.lot_spread == whole.lot_spread
    for a, b in zip(combined.drift, whole.drift, strict=True):
        assert (a.index, a.pixel) == (b.index, b.pixel)
        assert a.shift_sd == pytest.approx(b.shift_sd) and a.out_of_range == b.out_of_range


def test_stats_round_trip_through_arrays(images):
    train, _ = images
    stats = InputStats.fit(train, image=True)
    again = InputStats.from_arrays(stats.arrays(), "test")
    assert np.array_equal(again.maximum, stats.maximum)
    assert again.part_spread == stats.part_spread


def test_feature_tables_are_checked_per_feature():
    rng = np.random.default_rng(0)
    train = np.c_[rng.normal(0, 1, 300), rng.normal(1000, 10, 300)]
    stats = InputStats.fit(train)
    lot = np.c_[rng.normal(0, 1, 50), rng.normal(1000, 10, 50)]
    lot[4, 1] = 1200.0  # within the table's overall range, far outside its own feature's
    check = check_lot(lot, stats)
    assert list(np.flatnonzero(check.reasons != "")) == [4]


def test_statistics_from_batches_are_those_of_the_whole(images):
    """Rows read on demand give their statistics in one pass over batches: the same as
    from the array at once."""
    train, _ = images

    class Batched:
        def batches(self):
            for start in range(0, len(train), 70):  # uneven batches, a short last one
                yield start, train[start : start + 70]

    whole, streamed = InputStats.fit(train, image=True), InputStats.fit(Batched(), image=True)
    for name in ("minimum", "maximum", "mean", "std"):
        np.testing.assert_allclose(getattr(streamed, name), getattr(whole, name), rtol=1e-9)
    assert (streamed.part_median, streamed.part_spread) == (whole.part_median, whole.part_spread)
