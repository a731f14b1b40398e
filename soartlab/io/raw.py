"""RawData: what every reader returns, and the checks every file's samples get.

A reader only has to turn its format into samples and labels; the checks that are the
same for every format (rows, features, finite values) are made once, by
``checked_samples``, on what the reader returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from soartlab.errors import DataError
from soartlab.io.limits import Limits
from soartlab.io.messages import rows_text


@dataclass(frozen=True)
class RawData:
    """What a data file holds before it becomes a dataset.

    ``samples`` are kept as read so that messages quote the file's own values (1e39 is
    beyond float32, and would read as inf once converted); ``checked_samples`` makes them
    float32 (N, d).
    """

    samples: np.ndarray  # (N, d) numbers as read, or float32 (N, H, W) decoded images in [0, 1]
    labels: np.ndarray | None  # (N,) as written (integers or names); None: an unlabelled lot
    label_names: list[str] | None = None  # class names stored with the file, by label index
    image_shape: tuple[int, ...] | None = None  # (H, W) when the samples are images
    columns: list[str] | None = None  # feature column names, to name a column in messages
    # about the file, for the Data page: "encoding", "sheet", "sheets", "image_sizes", ...
    notes: Mapping[str, object] = field(default_factory=dict)
    # ID columns (part number, lot, file name): name → (N,) text, in file order; kept with
    # the samples and carried to predictions, never features
    ids: Mapping[str, np.ndarray] = field(default_factory=dict)


def checked_samples(raw: RawData, name: str, limits: Limits) -> np.ndarray:
    """The samples of ``raw`` (read from file ``name``) as float32 (N, d), rows flattened.

    DataError when there are no rows or no features, more than ``limits.max_rows`` rows or
    ``limits.max_columns`` features, or a value that is not a finite float32.
    """
    n = len(raw.samples)
    if n == 0:
        raise DataError(f"'{name}' holds no data rows.")
    flat = raw.samples.reshape(n, -1)
    d = flat.shape[1]
    if d == 0:
        raise DataError(
            f"'{name}' holds no features: its samples have shape {raw.samples.shape}. Each "
            "sample needs at least one value."
        )
    if n > limits.max_rows:
        raise DataError(f"'{name}' has {n:,} rows; the limit is {limits.max_rows:,} rows.")
    if d > limits.max_columns:
        raise DataError(f"'{name}' has {d:,} features; the limit is {limits.max_columns:,}.")
    return finite_float32(flat, name, raw.columns)


def finite_float32(flat: np.ndarray, name: str, columns: list[str] | None) -> np.ndarray:
    """(N, d) → float32; non-finite values (NaN, inf, missing, beyond float32) refused."""
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.ascontiguousarray(flat, dtype=np.float32)
    ok = np.isfinite(values)
    if ok.all():
        return values
    bad_rows = np.flatnonzero(~ok.all(axis=1))
    row = int(bad_rows[0])
    col = int(np.flatnonzero(~ok[row])[0])
    column = (
        repr(columns[col]) if columns is not None and len(columns) == flat.shape[1] else str(col)
    )
    raise DataError(
        f"'{name}': rows {rows_text(bad_rows)} (counted from 1) hold missing, NaN or "
        f"infinite values (row {row + 1}, column {column}: {flat[row, col]!r}). Every feature "
        "must be a finite number."
    )
