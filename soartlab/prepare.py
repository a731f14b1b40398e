"""Data prepared for training: the split, the arrays and what identifies the data.

`prepare` is the step between a loaded dataset and the training loop: it checks that
the data can train a model, draws the stratified held-out split, and returns the raw
arrays of both parts (the model normalises its own inputs), the class names, the good
class, **the held-out row numbers** and a fingerprint of the data, so that figures shown
later can be computed on exactly the parts that were held out — and refused on other data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from soartlab import data as D
from soartlab.errors import DataError
from soartlab.rows import ArrowRows, is_rows

_FINGERPRINT_VERSION = b"soartlab-data/1"


@dataclass(frozen=True)
class PreparedData:
    """A labelled dataset split for training."""

    # (N_train, d) float32, raw samples (images flattened row-major); for a large source a
    # `soartlab.rows.RowView` that reads them on demand (``x[rows]`` → float32 array)
    x_train: np.ndarray
    y_train: np.ndarray  # (N_train,) int64 class ids
    x_test: np.ndarray  # (N_test, d) float32
    y_test: np.ndarray  # (N_test,) int64
    train_indices: np.ndarray  # (N_train,) rows of the dataset, sorted
    test_indices: np.ndarray  # (N_test,) rows of the dataset held out, sorted
    label_names: tuple[str, ...]
    good_index: int
    input_shape: tuple[int, ...]  # (H, W) for images, (d,) for feature vectors
    fingerprint: str  # `fingerprint` of the whole dataset
    warnings: tuple[str, ...] = ()  # from `data.check_trainable` (small classes)

    @property
    def n_samples(self) -> int:
        return len(self.train_indices) + len(self.test_indices)

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 2


def fingerprint(X, y: np.ndarray, label_names: list[str] | tuple[str, ...]) -> str:
    """SHA-256 over the samples (N, d) float32 (an array, or rows read on demand:
    `soartlab.rows`), their labels and the class names: equal
    exactly when the same rows, in the same order, with the same labels are loaded."""
    digest = hashlib.sha256(_FINGERPRINT_VERSION)
    if not is_rows(X):
        X = np.ascontiguousarray(X, dtype=np.float32)
    digest.update(json.dumps([list(X.shape), list(label_names)]).encode("utf-8"))
    digest.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    if is_rows(X):  # rows read on demand: the same bytes, a batch at a time
        for _, batch in X.batches():
            digest.update(np.ascontiguousarray(batch, dtype=np.float32).tobytes())
    else:
        digest.update(X.tobytes())
    return digest.hexdigest()


def dataset_fingerprint(dataset) -> str:
    """`fingerprint` of a `soartlab.data` dataset."""
    X, y = D.to_arrays(dataset)
    return fingerprint(X, y, D.label_names(dataset))


def prepare(
    dataset,
    test_size: float = 0.2,
    seed: int = 0,
    good_class: str | int | None = None,
    *,
    one_class: bool = False,
) -> PreparedData:
    """Check, split and convert ``dataset`` for training; `DataError` when it cannot train
    a model (fewer than 2 classes, a class with a single sample, a split with an empty
    class). ``one_class``: a data set of a single class is accepted (a good-only run,
    which is not trained: see `workflow.good_only_run`). ``dataset`` may also be the
    `ArrowRows` of a large source: the parts are then `RowView`s of it, read a batch at a
    time."""
    if isinstance(dataset, ArrowRows):
        return _prepare_rows(dataset, test_size, seed, good_class)
    if one_class and int((D.class_counts(dataset) > 0).sum()) == 1:
        count = int(D.class_counts(dataset).max())
        if count < 4:
            raise DataError(
                f"Good parts only: {count} parts; at least 4 are needed (references, "
                "held-out parts and leave-one-out distances)."
            )
        warnings = []
    else:
        warnings = D.check_trainable(dataset)
    names = D.label_names(dataset)
    X, y = D.to_arrays(dataset)
    train, test = D.split_indices(y, test_size=test_size, seed=seed)
    return PreparedData(
        x_train=X[train],
        y_train=y[train],
        x_test=X[test],
        y_test=y[test],
        train_indices=train,
        test_indices=test,
        label_names=tuple(names),
        good_index=D.good_index(names, good_class),
        input_shape=tuple(D.input_shape(dataset)),
        fingerprint=fingerprint(X, y, names),
        warnings=tuple(warnings),
    )


def _prepare_rows(
    rows: ArrowRows, test_size: float, seed: int, good_class: str | int | None
) -> PreparedData:
    """`prepare` of rows read on demand: the same checks and split, no sample loaded."""
    names = list(rows.label_names)
    counts = np.bincount(rows.labels, minlength=len(names))
    warnings = D.check_class_counts(counts, names)
    train, test = D.split_indices(rows.labels, test_size=test_size, seed=seed)
    return PreparedData(
        x_train=rows.subset(train),
        y_train=rows.labels[train],
        x_test=rows.subset(test),
        y_test=rows.labels[test],
        train_indices=train,
        test_indices=test,
        label_names=tuple(names),
        good_index=D.good_index(names, good_class),
        input_shape=tuple(rows.input_shape),
        fingerprint=rows.fingerprint,
        warnings=tuple(warnings),
    )
