"""Checks on a lot before it is scored: is each part within what the run was trained on,
and is the lot as a whole on the training data's scale?

The run stores `InputStats` of its training split (per input feature: min, max, mean,
std; per part: the median and spread of its values). `check_lot` then gives

- per part, a reason to send it to review (never to pass): a value that is not finite
  (the file's, or after the model's normalisation: 3.4e38, a float32 "invalid" marker,
  overflows there), or a value far outside the training range: beyond
  ``min − RANGE_TOLERANCE·span`` or ``max + RANGE_TOLERANCE·span``, span = max − min,
  taken per feature for feature tables and over all pixels for images (a defect is
  exactly a pixel unlike that pixel in good parts, so per-pixel ranges would send real
  defects to review; a pixel outside the images' own value range is another matter);
- per lot, a drift report: the features whose lot mean moved by more than
  `DRIFT_SD` training standard deviations (and by more than `DRIFT_STANDARD_ERRORS`
  standard errors of a lot mean, so a small lot is not all drift), largest first; a
  feature (nearly) constant in training is measured against `DRIFT_SD_FLOOR` of the
  typical training part's spread instead of its own SD of (nearly) zero;
- a refusal (`DataError`) of a lot plainly on another scale: its typical part spread
  (median over parts of the 1st–99th percentile range of the part's values) is more than
  `SCALE_FACTOR` times the training parts' or less than 1/`SCALE_FACTOR` of it, or its
  typical part median lies more than `SCALE_FACTOR` training spreads away. A 0–255 lot
  against a 0–1 run differs by 255×; natural variation and a few outlying parts move
  these medians little, so an honest lot is never refused (its outliers go to review).
  A lot of another image size is refused earlier (the feature count differs).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from soartlab.errors import DataError, SoartLabError

RANGE_TOLERANCE = 1.0  # allowed beyond the training range, in training spans
DRIFT_SD = 0.5  # a feature's lot mean this many training SDs away is reported as drift
DRIFT_STANDARD_ERRORS = 4.0  # ... and this many standard errors of a lot mean (small lots)
SCALE_FACTOR = 10.0  # a lot whose typical part spread differs this much is refused
DRIFT_LISTED = 10  # features named in the drift summary
# The smallest training SD a drift is measured in, as a share of the typical training part's
# spread: a pixel always 0 in training would otherwise make a lot mean of 0.001 "+1e9 SD".
DRIFT_SD_FLOOR = 0.02

NOT_FINITE_VALUE = "a value is not finite"
NOT_FINITE_INPUT = "not finite after normalisation"
OUT_OF_RANGE = "values far outside the training range"

_PART_QUANTILES = (0.01, 0.99)


def _part_profile(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per part (row of X (N, d)): its median value and the spread of its values (1st to
    99th percentile), ignoring values that are not finite; NaN for a part with none."""
    X = np.asarray(X, dtype=np.float64)
    finite = np.where(np.isfinite(X), X, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row without finite values → NaN
        low, median, high = np.nanquantile(
            finite, (_PART_QUANTILES[0], 0.5, _PART_QUANTILES[1]), axis=1
        )
    return median, high - low


@dataclass(frozen=True)
class InputStats:
    """What the training inputs looked like: per feature (d,) and per part (scalars)."""

    minimum: np.ndarray  # (d,) per input feature, float64
    maximum: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    part_median: float  # median over training parts of each part's median value
    part_spread: float  # median over training parts of each part's 1–99 % range
    image: bool = False  # images: one value range for all pixels (see `allowed_range`)

    @classmethod
    def fit(cls, X, image: bool = False) -> InputStats:
        """From the training split's raw inputs ``X`` (N, d) (finite: the loader checked):
        an array, or rows read on demand (anything with ``batches()`` yielding (start,
        batch), e.g. `rows.RowView`), taken in one streaming pass. ``image``: the features
        are pixels of one image."""
        if hasattr(X, "batches") and not isinstance(X, np.ndarray):
            batches = (batch for _, batch in X.batches())
        else:
            batches = iter([X])
        n, minimum, maximum, mean, m2 = 0, None, None, None, None
        medians, spreads = [], []
        for batch in batches:
            B = np.asarray(batch, dtype=np.float64).reshape(len(batch), -1)
            if not len(B):
                continue
            median, spread = _part_profile(B)
            medians.append(median)
            spreads.append(spread)
            b_mean = B.mean(axis=0)
            b_m2 = ((B - b_mean) ** 2).sum(axis=0)
            if n == 0:
                minimum, maximum, mean, m2 = B.min(axis=0), B.max(axis=0), b_mean, b_m2
            else:  # Chan et al.'s update of the mean and the sum of squared deviations
                minimum, maximum = (
                    np.minimum(minimum, B.min(axis=0)),
                    np.maximum(maximum, B.max(axis=0)),
                )
                delta, total = b_mean - mean, n + len(B)
                mean = mean + delta * (len(B) / total)
                m2 = m2 + b_m2 + delta**2 * (n * len(B) / total)
            n += len(B)
        if n == 0:
            raise DataError("Input statistics need at least one training part.")
        return cls(
            minimum,
            maximum,
            mean,
            np.sqrt(m2 / n),
            float(np.nanmedian(np.concatenate(medians))),
            float(np.nanmedian(np.concatenate(spreads))),
            bool(image),
        )

    @property
    def n_features(self) -> int:
        return len(self.minimum)

    def arrays(self) -> dict[str, np.ndarray]:
        """As stored in the run folder (see `from_arrays`)."""
        return {
            "input_min": self.minimum,
            "input_max": self.maximum,
            "input_mean": self.mean,
            "input_std": self.std,
            "input_part_profile": np.array([self.part_median, self.part_spread]),
            "input_is_image": np.array([int(self.image)], dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], source: str) -> InputStats:
        try:
            columns = [
                np.asarray(arrays[n], dtype=np.float64)
                for n in ("input_min", "input_max", "input_mean", "input_std")
            ]
            profile = np.asarray(arrays["input_part_profile"], dtype=np.float64)
        except KeyError as exc:
            raise SoartLabError(f"{source} lacks the training input statistics ({exc}).") from None
        d = len(columns[0])
        if any(c.shape != (d,) for c in columns) or profile.shape != (2,):
            raise SoartLabError(f"{source}: the training input statistics are malformed.")
        if not all(np.isfinite(c).all() for c in (*columns, profile)):
            raise SoartLabError(f"{source}: the training input statistics are not finite.")
        image = bool(np.asarray(arrays.get("input_is_image", [0])).reshape(-1)[0])
        return cls(*columns, float(profile[0]), float(profile[1]), image)

    def allowed_range(self) -> tuple[np.ndarray, np.ndarray]:
        """(low (d,), high (d,)): values beyond send a part to review."""
        if self.image:
            low, high = self.minimum.min(), self.maximum.max()
            span = max(high - low, self.part_spread, 1e-12)
            ones = np.ones_like(self.minimum)
            return ones * (low - RANGE_TOLERANCE * span), ones * (high + RANGE_TOLERANCE * span)
        span = self.maximum - self.minimum
        # a feature constant in training: allow its own size, or the typical part spread
        span = np.where(span > 0, span, np.maximum(np.abs(self.mean), self.part_spread))
        return self.minimum - RANGE_TOLERANCE * span, self.maximum + RANGE_TOLERANCE * span


@dataclass(frozen=True)
class FeatureDrift:
    feature: str  # "pixel (row, col)" for images, the column name or "feature i"
    shift_sd: float  # (lot mean − training mean) / training SD (floored: DRIFT_SD_FLOOR)
    lot_mean: float
    train_mean: float
    out_of_range: float  # share of the lot's values beyond the allowed range
    index: int = -1  # the feature's position in a part's values
    pixel: tuple[int, int] | None = None  # (row, col) for images
    column: str | None = None  # the column's name for a named feature table

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "shift_sd": self.shift_sd,
            "lot_mean": self.lot_mean,
            "train_mean": self.train_mean,
            "out_of_range": self.out_of_range,
        }


@dataclass(frozen=True)
class DriftTally:
    """What the drift report and the typical part spread need of a lot, kept as sums, so
    that the chunks of a lot read apart add up to the whole lot (`combine`)."""

    counts: np.ndarray  # (d,) finite values per feature
    sums: np.ndarray  # (d,) their sum
    outside: np.ndarray  # (d,) values beyond the allowed range
    part_spreads: np.ndarray  # (N,) each part's spread (see `_part_profile`)

    @classmethod
    def of(cls, X: np.ndarray, finite: np.ndarray, outside: np.ndarray, spreads) -> DriftTally:
        return cls(
            finite.sum(axis=0),
            np.where(finite, X, 0.0).sum(axis=0),
            outside.sum(axis=0),
            np.asarray(spreads, dtype=np.float64),
        )

    def merge(self, other: DriftTally) -> DriftTally:
        return DriftTally(
            self.counts + other.counts,
            self.sums + other.sums,
            self.outside + other.outside,
            np.concatenate([self.part_spreads, other.part_spreads]),
        )


@dataclass(frozen=True)
class LotCheck:
    """`check_lot`'s answer for a lot of N parts."""

    reasons: np.ndarray  # (N,) object: why a part goes to review ("" when it is fine)
    drift: tuple[FeatureDrift, ...]  # drifted features, largest shift first
    n_features: int
    lot_spread: float  # typical part spread of the lot
    train_spread: float
    n_flagged: int = 0  # parts with a reason
    notes: tuple[str, ...] = field(default_factory=tuple)
    # (N,) bool: every value finite, in the file and after the model's normalisation (the
    # parts a model can score); None when no normalisation was given
    scorable: np.ndarray | None = None
    tally: DriftTally | None = None  # None without training statistics

    def summary(self) -> str:
        """One paragraph for stderr or a page."""
        lines = [
            f"lot check: {self.n_flagged} of {len(self.reasons)} parts sent to review by the "
            f"lot check; typical part spread {self.lot_spread:.4g} (training "
            f"{self.train_spread:.4g})."
        ]
        if self.drift:
            top = ", ".join(f"{d.feature} {d.shift_sd:+.2f} SD" for d in self.drift[:DRIFT_LISTED])
            lines.append(
                f"drift: {len(self.drift)} of {self.n_features} features moved by more than "
                f"{DRIFT_SD:g} training SD (largest: {top})."
            )
        else:
            lines.append(f"drift: no feature's mean moved by more than {DRIFT_SD:g} training SD.")
        lines.extend(self.notes)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_parts": len(self.reasons),
            "n_flagged": self.n_flagged,
            "lot_spread": self.lot_spread,
            "train_spread": self.train_spread,
            "drift": [d.to_dict() for d in self.drift],
        }


def feature_place(
    i: int, input_shape: tuple[int, ...], names=None
) -> tuple[tuple[int, int] | None, str | None]:
    """Where feature ``i`` is: ``(pixel (row, col) or None, column name or None)``."""
    if names is not None and i < len(names):
        return None, str(names[i])
    if len(input_shape) == 2:
        return (i // input_shape[1], i % input_shape[1]), None
    return None, None


def feature_name(i: int, input_shape: tuple[int, ...], names=None) -> str:
    pixel, column = feature_place(i, input_shape, names)
    if column is not None:
        return column
    if pixel is not None:
        return f"pixel ({pixel[0]}, {pixel[1]})"
    return f"feature {i}"


def check_scale(X: np.ndarray, stats: InputStats, source: str = "The lot") -> tuple[float, float]:
    """`DataError` naming the scale found and the scale expected when the lot ``X``
    (N, d) is plainly on another scale than the training data (see the module's
    docstring); returns the lot's (typical part median, typical part spread)."""
    lot_median, lot_spread, _ = _check_scale(X, stats, source)
    return lot_median, lot_spread


def _check_scale(X: np.ndarray, stats: InputStats, source: str) -> tuple[float, float, np.ndarray]:
    """`check_scale`, also returning each part's spread (N,)."""
    median, spread = _part_profile(X)
    if not np.isfinite(spread).any():
        raise DataError(f"{source} holds no finite values to score.")
    lot_median, lot_spread = float(np.nanmedian(median)), float(np.nanmedian(spread))
    train_spread = max(stats.part_spread, 1e-12)
    ratio = lot_spread / train_spread
    shifted = abs(lot_median - stats.part_median) > SCALE_FACTOR * train_spread
    # a lot of flat parts (blank images, constant rows) has no spread to compare: its
    # scale is judged by where its values sit, and the range check looks at each part
    flat = lot_spread <= 1e-12
    if (not flat and (ratio > SCALE_FACTOR or ratio < 1 / SCALE_FACTOR)) or shifted:
        lot_low, lot_high = (
            np.nanmin(np.where(np.isfinite(X), X, np.nan)),
            np.nanmax(np.where(np.isfinite(X), X, np.nan)),
        )
        raise DataError(
            f"{source} is on another scale than the training data: its values run from "
            f"{lot_low:.4g} to {lot_high:.4g} (a typical part spans {lot_spread:.4g} around "
            f"{lot_median:.4g}); the run was trained on values from {stats.minimum.min():.4g} "
            f"to {stats.maximum.max():.4g} (a typical part spans {stats.part_spread:.4g} "
            f"around {stats.part_median:.4g}), {ratio:.3g}× apart. Export the lot as the "
            "training data was (e.g. 0–1, not 0–255), or train on data like it."
        )
    return lot_median, lot_spread, spread


def check_lot(
    X,
    stats: InputStats | None,
    normalization=None,
    *,
    input_shape: tuple[int, ...] = (),
    feature_names=None,
    source: str = "The lot",
) -> LotCheck:
    """Check the raw lot ``X`` (N, d) against the training ``stats`` before scoring: a
    lot on another scale → `DataError`; otherwise per-part reasons for review and the
    drift report. ``normalization``: the model's (`data.Normalization`), whose output must
    stay finite. ``stats`` None (a run saved before statistics were kept): only the
    finiteness checks."""
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    reasons = np.full(len(X), "", dtype=object)
    finite = np.isfinite(X)
    reasons[~finite.all(axis=1)] = NOT_FINITE_VALUE
    scorable = None
    if normalization is not None:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            normalised = normalization.apply(X.astype(np.float32, copy=False))
        scorable = np.isfinite(normalised.reshape(len(X), -1)).all(axis=1)
        reasons[~scorable & (reasons == "")] = NOT_FINITE_INPUT
    if stats is None:
        return LotCheck(
            reasons,
            (),
            X.shape[1],
            float("nan"),
            float("nan"),
            int((reasons != "").sum()),
            ("no training statistics in this run: only finiteness was checked.",),
            scorable,
        )
    if X.shape[1] != stats.n_features:
        raise DataError(
            f"{source} has {X.shape[1]} features; the run was trained on {stats.n_features}."
        )
    _, lot_spread, spreads = _check_scale(X, stats, source)
    low, high = stats.allowed_range()
    with np.errstate(invalid="ignore"):
        outside = finite & ((X < low) | (X > high))
    reasons[outside.any(axis=1) & (reasons == "")] = OUT_OF_RANGE
    tally = DriftTally.of(X, finite, outside, spreads)
    return LotCheck(
        reasons,
        _drift(tally, stats, input_shape, feature_names),
        X.shape[1],
        lot_spread,
        stats.part_spread,
        int((reasons != "").sum()),
        scorable=scorable,
        tally=tally,
    )


def combine(
    checks: list[LotCheck],
    stats: InputStats | None,
    *,
    input_shape: tuple[int, ...] = (),
    feature_names=None,
) -> LotCheck:
    """The `LotCheck` of a whole lot from those of its chunks, in order (a lot too large
    to hold, checked a chunk at a time): the reasons one after another, and the drift
    report and typical part spread of all the parts together, as `check_lot` of the
    whole lot would give them."""
    if not checks:
        raise SoartLabError("combine needs the check of at least one chunk.")
    reasons = np.concatenate([c.reasons for c in checks])
    scorable = None
    if all(c.scorable is not None for c in checks):
        scorable = np.concatenate([c.scorable for c in checks])
    tallies = [c.tally for c in checks]
    if stats is None or any(t is None for t in tallies):
        return LotCheck(
            reasons,
            (),
            checks[0].n_features,
            float("nan"),
            float("nan"),
            int((reasons != "").sum()),
            checks[0].notes,
            scorable,
        )
    tally = tallies[0]
    for more in tallies[1:]:
        tally = tally.merge(more)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # every part without finite values
        lot_spread = float(np.nanmedian(tally.part_spreads))
    return LotCheck(
        reasons,
        _drift(tally, stats, input_shape, feature_names),
        checks[0].n_features,
        lot_spread,
        stats.part_spread,
        int((reasons != "").sum()),
        scorable=scorable,
        tally=tally,
    )


def _drift(tally: DriftTally, stats: InputStats, input_shape, feature_names):
    counts = tally.counts
    with np.errstate(invalid="ignore", divide="ignore"):
        lot_mean = tally.sums / np.maximum(counts, 1)
        floor = DRIFT_SD_FLOOR * stats.part_spread
        if not floor > 0:  # every training part flat: a share of the values' own size
            floor = max(DRIFT_SD_FLOOR * float(np.max(np.abs(stats.mean), initial=0)), 1e-12)
        sd = np.maximum(stats.std, floor)
        shift = (lot_mean - stats.mean) / sd
    share_out = tally.outside / max(len(tally.part_spreads), 1)
    # a small lot's mean wanders by chance: also ask for DRIFT_STANDARD_ERRORS of it
    limit = np.maximum(DRIFT_SD, DRIFT_STANDARD_ERRORS / np.sqrt(np.maximum(counts, 1)))
    moved = np.flatnonzero((np.abs(shift) > limit) & (counts > 0))
    moved = moved[np.argsort(-np.abs(shift[moved]))]
    return tuple(
        FeatureDrift(
            feature_name(int(i), input_shape, feature_names),
            float(shift[i]),
            float(lot_mean[i]),
            float(stats.mean[i]),
            float(share_out[i]),
            int(i),
            *feature_place(int(i), input_shape, feature_names),
        )
        for i in moved
    )
