"""Datasets: loading and validating user files, and the array helpers training needs.

A dataset is a ``datasets.Dataset`` with

- an ``"image"`` column, ``Array2D(shape=(H, W), dtype="float32")``, when samples are
  images, or a ``"features"`` column, ``Sequence(Value("float32"), length=d)``;
- a ``"label"`` column, ``ClassLabel(names=[...])``.

``load_dataset`` reads ``.csv``, ``.tsv``, ``.xlsx``, ``.parquet``, ``.npz`` and ``.zip``
(one folder per class) with the reader ``soartlab.io`` registers for the suffix, and turns every
problem with the file into a ``DataError`` that says what is wrong and what is expected.
Class names are the labels as written (see ``_encode_labels``): integers as their decimal
text, text unchanged (``"001"``, ``"NA"``); plain integers sorted by value, other names
with a good/ok/pass name first. Image values from image
files are scaled to [0, 1]; numbers from tables and arrays are kept as they are (normalise
with ``Normalization``). ``Limits`` (the caps on a user file) lives in ``soartlab.io``.

Beside them a dataset may hold ID columns (text: part number, lot, image file name; see
``id_columns``), never features, and its ``info.description`` holds what reading the file
found (the encoding, the sheet, image sizes; see ``file_notes``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from datasets import Array2D, ClassLabel, Dataset, DatasetInfo, Features, Sequence, Value
from datasets.table import InMemoryTable

from soartlab.errors import DataError
from soartlab.io import (
    Limits,
    check_file_size,
    checked_samples,
    finite_float32,
    reader_for,
    reading,
)
from soartlab.io.messages import rows_text

GOOD_NAMES = ("good", "ok", "pass", "良品", "正常", "合格", "合格品", "ｏｋ", "ok品")
"""Label names taken as the good (合格) class, case-insensitive, in order of preference."""

MIN_SAMPLES_PER_CLASS = 2
WARN_SAMPLES_PER_CLASS = 5
STD_FLOOR = 1e-6


# The single class name of a lot loaded without labels.
UNLABELLED = "(unlabelled)"

# --- loading --------------------------------------------------------------------------------


def load_dataset(
    path: str | Path,
    *,
    input_shape: tuple[int, ...] | None = None,
    image_size: tuple[int, int] | None = None,
    label_column: str = "label",
    limits: Limits = Limits(),  # noqa: B008 - frozen, so a shared default is safe
    require_labels: bool = True,
    id_columns: list[str] | None = None,
    sheet: str | None = None,
) -> Dataset:
    """Read and validate a data file; return an image or feature dataset.

    ``input_shape`` reshapes the d features of each sample ((H, W) → images, (d,) →
    vectors; the product must equal d). ``image_size`` (H, W) is the size images from a
    zip or an image Parquet are resized to (None: their most common size; ``file_notes``
    says how many changed size). One class is allowed here; ``check_trainable`` says
    whether the data can train a model. With ``require_labels=False`` a table without a
    label column, or a zip of images without class folders, loads as an unlabelled lot
    (one class, ``UNLABELLED``; see ``is_labelled``), for prediction. ``id_columns``:
    the table columns that identify parts (None: every column of text none of whose
    values is a number). ``sheet``: the sheet of an ``.xlsx`` (default the first).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"No data file at '{path}'.")
    read = reader_for(path)
    check_file_size(path, limits)
    if image_size is not None:
        image_size = _check_shape(image_size, "image_size")
    if id_columns is not None:
        id_columns = [str(c) for c in id_columns]
    if input_shape is not None:
        input_shape = _check_shape(input_shape, "input_shape", allow_1d=True)

    with reading(path):
        raw = read(
            path,
            limits,
            label_column=label_column,
            image_size=image_size,
            require_labels=require_labels,
            id_columns=id_columns,
            sheet=sheet,
        )
        flat = checked_samples(raw, path.name, limits)
        if raw.labels is None:
            y, names = np.zeros(len(flat), dtype=np.int64), [UNLABELLED]
        else:
            y, names = _encode_labels(raw.labels, raw.label_names, path.name)
        shape = raw.image_shape
        if input_shape is not None:
            if math.prod(input_shape) != flat.shape[1]:
                raise DataError(
                    f"input_shape {input_shape} holds {math.prod(input_shape)} values, but each "
                    f"sample in '{path.name}' has {flat.shape[1]} features."
                )
            shape = input_shape
        return _build(flat, y, names, shape, ids=raw.ids, notes=raw.notes)


def file_notes(ds: Dataset) -> dict:
    """What reading the file found, for the Data page: ``encoding`` (e.g. ``"cp932"``),
    ``sheet`` and ``sheets`` (a workbook), ``image_size``, ``image_sizes`` and
    ``resized`` (images); empty for data not read from a file."""
    try:
        notes = json.loads(ds.info.description or "{}")
    except ValueError:
        return {}
    return notes if isinstance(notes, dict) else {}


def id_columns(ds: Dataset) -> list[str]:
    """The names of the dataset's ID columns (part number, lot, file name), file order."""
    return [c for c in ds.column_names if c not in _SAMPLE_COLUMNS]


def id_table(ds: Dataset) -> dict[str, list[str]]:
    """The ID columns' values, name → (N,) text; empty when the dataset has none."""
    names = id_columns(ds)
    if not names:
        return {}
    table = ds.with_format("arrow", columns=names)[:]
    return {n: table.column(n).to_pylist() for n in names}


def is_labelled(ds: Dataset) -> bool:
    """False for a lot loaded without labels (``require_labels=False``)."""
    return label_names(ds) != [UNLABELLED]


def _check_shape(shape, what: str, allow_1d: bool = False) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise DataError(f"{what} must be a tuple of positive integers; got {shape!r}.") from None
    lengths = (1, 2) if allow_1d else (2,)
    if len(shape) not in lengths or min(shape) < 1:
        raise DataError(
            f"{what} must be {'(d,) or ' if allow_1d else ''}(H, W) with positive sizes; "
            f"got {shape!r}."
        )
    return shape


def _encode_labels(
    labels: np.ndarray, stored_names: list[str] | None, name: str
) -> tuple[np.ndarray, list[str]]:
    """Raw labels (N,) as the reader returned them (integers, whole floats or text) →
    class indices (N,) int64 and class names.

    Names are the labels as written: integers (any width, uint64 included) as their
    decimal text, text unchanged but for surrounding spaces (``"001"`` stays ``"001"``,
    ``"NA"`` is a class). An empty label is a missing one, refused. Order: plain decimal
    integers by value, otherwise by text with a good/ok/pass name first. With
    ``stored_names`` (class names stored in the file), integer labels index them.
    """
    if labels.dtype.kind == "b":
        labels = labels.astype(np.int64)
    if labels.dtype.kind == "f":
        labels = _whole_number_labels(labels, name)
    if labels.dtype.kind in "iu":
        if stored_names is not None and len(set(stored_names)) == len(stored_names):
            if labels.min() >= 0 and labels.max() < len(stored_names):
                return labels.astype(np.int64), list(stored_names)
            raise DataError(
                f"'{name}': labels run from {labels.min()} to {labels.max()}, but only "
                f"{len(stored_names)} class names are given ({', '.join(stored_names)})."
            )
        values, y = np.unique(labels, return_inverse=True)
        return y.astype(np.int64).reshape(-1), [str(v) for v in values.tolist()]
    text = np.array([str(v).strip() for v in labels.tolist()], dtype=object)
    empty = np.flatnonzero(text == "")
    if len(empty):
        raise DataError(
            f"'{name}': rows {rows_text(empty)} have an empty label; every row needs a class."
        )
    values, inverse = np.unique(text, return_inverse=True)
    names = _class_order(values.tolist())
    position = {n: k for k, n in enumerate(names)}
    remap = np.array([position[v] for v in values.tolist()], dtype=np.int64)
    return remap[inverse.reshape(-1)], names


_PLAIN_INTEGER = re.compile(r"0|-?[1-9][0-9]*")
"""A label written as a plain decimal integer (no sign on 0, no leading zeros)."""


def _class_order(names: list[str]) -> list[str]:
    """Plain decimal integers by value (``"2"`` before ``"10"``), as integer labels from
    Parquet or NPZ; otherwise by text, with a good/ok/pass name first."""
    if all(_PLAIN_INTEGER.fullmatch(n) for n in names):
        return sorted(names, key=int)
    return sorted(names, key=lambda n: (n.lower() not in GOOD_NAMES, n))


def _whole_number_labels(labels: np.ndarray, name: str) -> np.ndarray:
    """Float labels (N,) → int64, when every one is a whole number that int64 holds
    exactly (a label column that went through a float column, 1.0 → "1"). Anything else
    would merge or invent classes, so it is refused."""
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(labels) & (labels == np.round(labels)) & (np.abs(labels) < 2.0**63)
    if not whole.all():
        row = int(np.flatnonzero(~whole)[0])
        raise DataError(
            f"'{name}': the label in row {row + 1} is {float(labels[row])!r}; labels must be class "
            "names or whole numbers (below 2**63). Store the labels as text to keep such "
            "a value as a class name."
        )
    return labels.astype(np.int64)


_SAMPLE_COLUMNS = ("image", "features", "label")


def _build(
    flat: np.ndarray,
    y: np.ndarray,
    names: list[str],
    shape,
    ids: dict[str, np.ndarray] | None = None,
    notes: dict | None = None,
) -> Dataset:
    """float32 (N, d), int64 (N,), names, (H, W) | (d,) | None → Dataset, built in Arrow.
    ``ids``: ID columns, name → (N,) text (a name taken by a sample column gets " (ID)");
    ``notes``: what reading the file found (see ``file_notes``)."""
    n, d = flat.shape
    values = pa.array(np.ascontiguousarray(flat, dtype=np.float32).reshape(-1))
    label = ClassLabel(names=list(names))
    if shape is not None and len(shape) == 2:
        height, width = shape
        features = Features(
            {"image": Array2D(shape=(height, width), dtype="float32"), "label": label}
        )
        rows = pa.ListArray.from_arrays(
            pa.array(np.arange(n * height + 1, dtype=np.int32) * width), values
        )
        images = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * height), rows)
        column = pa.ExtensionArray.from_storage(features.arrow_schema.field("image").type, images)
        data = {"image": column}
    else:
        features = Features({"features": Sequence(Value("float32"), length=d), "label": label})
        data = {"features": pa.FixedSizeListArray.from_arrays(values, d)}
    data["label"] = pa.array(np.asarray(y, dtype=np.int64))
    for column, values in (ids or {}).items():
        while column in features:
            column = f"{column} (ID)"
        features[column] = Value("string")
        data[column] = pa.array([str(v) for v in values], pa.string())
    table = pa.table(data, schema=features.arrow_schema)
    description = json.dumps(dict(notes or {}), ensure_ascii=False, default=str)
    return Dataset(
        InMemoryTable(table), info=DatasetInfo(features=features, description=description)
    )


def from_arrays(X, y, label_names, input_shape: tuple[int, ...] | None = None) -> Dataset:
    """Build a dataset from arrays: X (N, d) or (N, H, W), y (N,) class indices.

    ``input_shape`` (H, W) makes images of (N, d) rows, (d,) makes vectors; a 3-D X is
    images of its own shape unless told otherwise.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    names = [str(n) for n in label_names]
    if X.ndim not in (2, 3) or X.dtype.kind not in "biuf":
        raise DataError(f"X must be numeric (N, d) or (N, H, W); got {X.dtype} {X.shape}.")
    if y.ndim != 1 or len(y) != len(X) or (len(y) and y.dtype.kind not in "iu"):
        raise DataError(f"y must be (N,) integers with N = {len(X)}; got {y.dtype} {y.shape}.")
    if len(set(names)) != len(names) or not names:
        raise DataError(f"label_names must be distinct and non-empty; got {names}.")
    if len(y) and (y.min() < 0 or y.max() >= len(names)):
        raise DataError(
            f"y holds class indices {y.min()}..{y.max()}, but there are {len(names)} names."
        )
    flat = X.reshape(len(X), -1)
    shape = tuple(X.shape[1:]) if X.ndim == 3 else None
    if input_shape is not None:
        input_shape = _check_shape(input_shape, "input_shape", allow_1d=True)
        if math.prod(input_shape) != flat.shape[1]:
            raise DataError(
                f"input_shape {input_shape} holds {math.prod(input_shape)} values, but X has "
                f"{flat.shape[1]} features per sample."
            )
        shape = input_shape
    return _build(finite_float32(flat, "X", None), y.astype(np.int64), names, shape)


# --- reading a dataset back -----------------------------------------------------------------


def _data_column(ds: Dataset) -> str:
    for column in ("image", "features"):
        if column in ds.features:
            return column
    raise DataError(
        f"The dataset has no 'image' or 'features' column; columns: {list(ds.features)}."
    )


def is_image(ds: Dataset) -> bool:
    """True when samples are images (an ``image`` column), False for feature vectors."""
    return _data_column(ds) == "image"


def to_arrays(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """X float32 (N, d) with images flattened row-major, and y int64 (N,)."""
    column = _data_column(ds)
    n, d = len(ds), math.prod(input_shape(ds))
    table = ds.with_format("arrow")[:]
    values = table.column(column).combine_chunks()
    if isinstance(values, pa.ExtensionArray):
        values = values.storage
    while pa.types.is_list(values.type) or pa.types.is_fixed_size_list(values.type):
        values = values.flatten()
    if len(values) == n * d and values.null_count == 0:
        X = values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(n, d)
    else:  # an unusual storage layout: let datasets do the conversion
        X = np.asarray(ds.with_format("numpy")[:][column], dtype=np.float32).reshape(n, d)
    y = table.column("label").to_numpy(zero_copy_only=False).astype(np.int64)
    return X, y


def input_shape(ds: Dataset) -> tuple[int, ...]:
    """(H, W) for an image dataset, (d,) for a feature dataset."""
    column = _data_column(ds)
    feature = ds.features[column]
    if column == "image":
        return tuple(int(s) for s in feature.shape)
    length = getattr(feature, "length", -1)
    if length is None or length < 0:
        length = len(ds[0][column]) if len(ds) else 0
    return (int(length),)


def label_names(ds: Dataset) -> list[str]:
    """Class names in label-index order."""
    return list(ds.features["label"].names)


def good_index(ds_or_names, good_class: str | int | None = None) -> int:
    """Index of the good (合格) class.

    Default: the first label named good, ok or pass (case-insensitive), else 0. A given
    ``good_class`` (name or index) must exist; otherwise DataError lists the names.
    """
    names = label_names(ds_or_names) if isinstance(ds_or_names, Dataset) else list(ds_or_names)
    names = [str(n) for n in names]
    if good_class is None:
        lowered = [n.lower() for n in names]
        for good in GOOD_NAMES:
            if good in lowered:
                return lowered.index(good)
        return 0
    if isinstance(good_class, int | np.integer) and not isinstance(good_class, bool):
        if 0 <= good_class < len(names):
            return int(good_class)
    elif str(good_class) in names:
        return names.index(str(good_class))
    else:
        folded = [n.lower() for n in names]
        if str(good_class).lower() in folded:
            return folded.index(str(good_class).lower())
    raise DataError(f"good_class {good_class!r} is not one of the classes: {', '.join(names)}.")


# --- training checks and splits -------------------------------------------------------------


def class_counts(ds: Dataset) -> np.ndarray:
    """Samples per class (n_classes,), in label-index order."""
    y = ds.with_format("arrow", columns=["label"])[:].column("label")
    y = y.to_numpy(zero_copy_only=False)
    return np.bincount(y.astype(np.int64), minlength=len(label_names(ds)))


def check_trainable(ds: Dataset) -> list[str]:
    """Whether the dataset can train a model; returns warnings (classes below 5 samples).

    DataError when fewer than 2 classes hold samples, or a class holds a single sample.
    """
    return check_class_counts(class_counts(ds), label_names(ds))


def check_class_counts(counts: np.ndarray, names: list[str]) -> list[str]:
    """`check_trainable` of samples per class ``counts`` (n_classes,) named ``names``."""
    present = [names[i] for i in np.flatnonzero(counts)]
    if len(present) < 2:
        only = f" (only {present[0]!r} is present)" if present else ""
        raise DataError(
            f"Cannot train: need at least 2 classes{only}. Add samples of another class, "
            "e.g. good parts and one defect type."
        )
    too_small = [f"{names[i]!r} ({counts[i]})" for i in np.flatnonzero((counts > 0) & (counts < 2))]
    if too_small:
        raise DataError(
            f"Class {', '.join(too_small)} has fewer than {MIN_SAMPLES_PER_CLASS} samples; "
            "every class needs at least 2 to form matched pairs and a held-out split."
        )
    warnings = [
        f"Class {names[i]!r} has only {counts[i]} samples; results for it will be unreliable "
        f"(at least {WARN_SAMPLES_PER_CLASS} are advised)."
        for i in np.flatnonzero((counts > 0) & (counts < WARN_SAMPLES_PER_CLASS))
    ]
    warnings += [f"Class {names[i]!r} has no samples." for i in np.flatnonzero(counts == 0)]
    return warnings


def split_indices(
    labels: np.ndarray, test_size: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train rows, test rows), each sorted int64: every class keeps its share
    in both parts. ``labels``: (N,) class ids. The one place a held-out split is drawn."""
    from sklearn.model_selection import train_test_split

    if isinstance(test_size, bool) or not 0.0 < float(test_size) < 1.0:
        raise DataError(f"test_size must be between 0 and 1; got {test_size!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**32:
        raise DataError(f"The split's seed must be an integer from 0 to 2**32 - 1; got {seed!r}.")
    labels = np.asarray(labels, dtype=np.int64)
    present, counts = np.unique(labels, return_counts=True)
    if (counts < 2).any():
        raise DataError(
            f"Cannot split stratified: class id(s) {present[counts < 2].tolist()} have fewer "
            "than 2 samples."
        )
    n_test = math.ceil(float(test_size) * len(labels))
    if not len(present) <= n_test <= len(labels) - len(present):
        raise DataError(
            f"Cannot split {len(labels)} samples of {len(present)} classes stratified with "
            f"test_size={test_size}: each part needs at least one sample per class."
        )
    train, test = train_test_split(
        np.arange(len(labels)), test_size=n_test, stratify=labels, random_state=int(seed)
    )
    return np.sort(train).astype(np.int64), np.sort(test).astype(np.int64)


def validation_split(
    labels: np.ndarray, val_size: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray] | None:
    """Stratified (fit rows, validation rows) of a training split, each sorted int64
    positions into ``labels`` (N,): the rows a run trains on and the rows that choose the
    epoch to keep (never the held-out split, which is drawn by `split_indices` first).
    Seeded apart from the held-out split. None when ``val_size`` is 0 or the rows cannot
    keep a sample of every class on both sides (a class with a single training row)."""
    from sklearn.model_selection import train_test_split

    if isinstance(val_size, bool) or not 0.0 <= float(val_size) < 1.0:
        raise DataError(f"val_size must be from 0 to below 1; got {val_size!r}.")
    labels = np.asarray(labels, dtype=np.int64)
    present, counts = np.unique(labels, return_counts=True)
    n_val = math.ceil(float(val_size) * len(labels))
    if n_val == 0 or (counts < 2).any():
        return None
    if not len(present) <= n_val <= len(labels) - len(present):
        return None
    # its own stream: the same seed must not draw the held-out split's pattern again
    state = int(np.random.SeedSequence([int(seed), 1]).generate_state(1)[0])
    fit, val = train_test_split(
        np.arange(len(labels)), test_size=n_val, stratify=labels, random_state=state
    )
    return np.sort(fit).astype(np.int64), np.sort(val).astype(np.int64)


def stratified_subsample(labels: np.ndarray, max_samples: int, seed: int) -> np.ndarray:
    """Sorted rows, at most about ``max_samples`` of ``labels`` ``(N,)``: every class
    keeps its share (at least 2 rows of a class that has them, so it forms pairs)."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) <= max_samples:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        n = min(len(rows), max(2, round(len(rows) * max_samples / len(labels))))
        keep.append(rng.choice(rows, size=n, replace=False))
    return np.sort(np.concatenate(keep))


# --- normalisation --------------------------------------------------------------------------


@dataclass
class Normalization:
    """(X − mean) / std, fitted on the training split only.

    Images: one global mean and std (floats). Feature tables: one per feature (lists of d
    floats); std is floored at 1e-6 so constant features do not blow up.
    """

    mean: float | list[float]
    std: float | list[float]

    @classmethod
    def fit(cls, X, per_feature: bool = False) -> Normalization:
        """Fit to X (N, d) or (N, H, W)."""
        flat = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
        if len(flat) == 0:
            raise DataError("Cannot fit a normalisation to zero samples.")
        if per_feature:
            mean = flat.mean(axis=0)
            std = np.maximum(flat.std(axis=0), STD_FLOOR)
            return cls(mean=mean.tolist(), std=std.tolist())
        return cls(mean=float(flat.mean()), std=float(max(flat.std(), STD_FLOOR)))

    @classmethod
    def for_dataset(cls, ds: Dataset, X=None) -> Normalization:
        """Fit the kind that suits ``ds``: global for images, per-feature for tables."""
        if X is None:
            X, _ = to_arrays(ds)
        return cls.fit(X, per_feature=not is_image(ds))

    @property
    def per_feature(self) -> bool:
        return isinstance(self.mean, list | tuple | np.ndarray)

    def check_width(self, in_features: int) -> None:
        """DataError unless this normalisation fits ``in_features`` inputs: one global mean
        and std, or one of each per input. The one place that rule is checked."""
        if self.per_feature and len(self.mean) != in_features:
            raise DataError(
                f"The normalisation holds {len(self.mean)} means and stds; the model has "
                f"{in_features} inputs (one per input, or one of each for all)."
            )

    def apply(self, X):
        """Normalise X (N, d) or (N, H, W) — NumPy → float32 NumPy, torch → torch."""
        if hasattr(X, "detach"):  # torch tensor, without importing torch here
            mean = X.new_tensor(self.mean)
            std = X.new_tensor(self.std)
            if self.per_feature:
                flat = X.reshape(X.shape[0], -1)
                return ((flat - mean) / std).reshape(X.shape)
            return (X - mean) / std
        X = np.asarray(X, dtype=np.float32)
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        if self.per_feature:
            flat = X.reshape(len(X), -1)
            if flat.shape[1] != mean.size:
                raise DataError(
                    f"The normalisation was fitted to {mean.size} features; X has {flat.shape[1]}."
                )
            return ((flat - mean) / std).reshape(X.shape)
        return (X - mean) / std

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        try:
            mean, std = d["mean"], d["std"]
        except (KeyError, TypeError):
            raise DataError(f"A normalisation needs 'mean' and 'std'; got {d!r:.200}.") from None

        def numbers(value) -> bool:  # a number, or a list of numbers (no text, no booleans)
            items = value if isinstance(value, list | tuple) else [value]
            return all(isinstance(v, int | float) and not isinstance(v, bool) for v in items)

        if not (numbers(mean) and numbers(std)):
            raise DataError(
                f"A normalisation's mean and std must be numbers or lists of numbers; got "
                f"mean {mean!r:.80}, std {std!r:.80}."
            )
        try:
            mean_arr = np.asarray(mean, dtype=np.float64)
            std_arr = np.asarray(std, dtype=np.float64)
        except OverflowError:  # an integer beyond float64, e.g. 10**400
            raise DataError(
                f"A normalisation's mean and std must be within float32's range; got mean "
                f"{mean!r:.40}, std {std!r:.40}."
            ) from None
        if mean_arr.shape != std_arr.shape or mean_arr.ndim > 1:
            raise DataError(
                "A normalisation needs a mean and a std of the same shape (scalars or lists); "
                f"got mean shape {mean_arr.shape}, std shape {std_arr.shape}."
            )
        normalization = (
            cls(mean=float(mean_arr), std=float(std_arr))
            if mean_arr.ndim == 0
            else cls(mean=mean_arr.tolist(), std=std_arr.tolist())
        )
        normalization.as_float32()  # the values the model will hold must be usable
        return normalization

    def as_float32(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` as the float32 arrays the model computes with (shape ``()`` or
        ``(d,)``); `DataError` when a mean is not finite in float32 or a std is not a
        positive, finite float32 of normal size. A mean of 1e300 or a std of 1e-300 is
        finite in the file but inf or 0 in the model, and would turn every sample into
        inf (and every part into "good")."""
        with np.errstate(over="ignore", under="ignore"):
            mean = np.asarray(self.mean, dtype=np.float32)
            std = np.asarray(self.std, dtype=np.float32)
        tiny, largest = np.finfo(np.float32).tiny, np.finfo(np.float32).max
        for name, bad in (
            ("mean", ~np.isfinite(mean)),
            ("std", ~(np.isfinite(std) & (std >= tiny))),
        ):
            if bad.any():
                value = np.ravel(getattr(self, name))[np.flatnonzero(np.ravel(bad))[0]]
                raise DataError(
                    "A normalisation needs a mean finite in float32 and a positive std "
                    f"from {tiny:.3g} to {largest:.3g}; got {name} {float(value):g}. The "
                    "normalisation is damaged or from another program: retrain the run."
                )
        return mean, std


# --- pairs ----------------------------------------------------------------------------------


def sample_pairs(
    labels, n_pairs: int, matched_fraction: float = 0.5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random index pairs for contrastive training, vectorised.

    Matched pairs (target 1) join two different samples of one class, the class drawn in
    proportion to its size among classes with ≥ 2 samples; unmatched pairs (target 0) join
    samples of two different classes. ``round(n_pairs · matched_fraction)`` pairs are
    matched; the pairs come back shuffled. Returns (i, j) int64 (n_pairs,) and target
    float32 (n_pairs,).
    """
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    n_pairs = int(n_pairs)
    if n_pairs < 0:
        raise DataError(f"n_pairs must be ≥ 0; got {n_pairs}.")
    if not 0.0 <= float(matched_fraction) <= 1.0:
        raise DataError(f"matched_fraction must be in [0, 1]; got {matched_fraction!r}.")
    rng = np.random.default_rng(seed)
    n_matched = int(round(n_pairs * float(matched_fraction)))
    n_unmatched = n_pairs - n_matched

    order = np.argsort(y, kind="stable")  # sample indices grouped by class
    classes, starts, counts = np.unique(y[order], return_index=True, return_counts=True)

    i_parts, j_parts = [], []
    if n_matched:
        eligible = np.flatnonzero(counts >= 2)
        if len(eligible) == 0:
            raise DataError("Matched pairs need a class with at least 2 samples.")
        weights = counts[eligible] / counts[eligible].sum()
        chosen = eligible[rng.choice(len(eligible), size=n_matched, p=weights)]
        size = counts[chosen]
        first = rng.integers(0, size)
        second = rng.integers(0, size - 1)
        second += second >= first  # a different sample of the same class
        i_parts.append(order[starts[chosen] + first])
        j_parts.append(order[starts[chosen] + second])
    if n_unmatched:
        if len(classes) < 2:
            raise DataError("Unmatched pairs need at least 2 classes.")
        first = rng.integers(0, len(y), size=n_unmatched)
        position = np.searchsorted(classes, y[first])  # class slot of the first sample
        others = len(y) - counts[position]
        pick = rng.integers(0, others)
        # skip over the first sample's own class block in the class-sorted order
        pick += np.where(pick >= starts[position], counts[position], 0)
        i_parts.append(first)
        j_parts.append(order[pick])
    i = np.concatenate(i_parts) if i_parts else np.empty(0, dtype=np.int64)
    j = np.concatenate(j_parts) if j_parts else np.empty(0, dtype=np.int64)
    target = np.concatenate([np.ones(n_matched), np.zeros(n_unmatched)]).astype(np.float32)
    shuffle = rng.permutation(n_pairs)
    return i[shuffle].astype(np.int64), j[shuffle].astype(np.int64), target[shuffle]


# --- writing --------------------------------------------------------------------------------


def write_table(path: str | Path, X, y, label_names, decimals: int | None = 4) -> Path:
    """Write samples as a table: ``label`` (class names) then ``px_<r>_<c>`` columns for
    images (N, H, W) or ``f0``… for vectors (N, d). ``.csv`` or ``.parquet`` by suffix.

    CSV values are rounded to ``decimals`` places to keep files small; Parquet stores
    float32 exactly.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise DataError(f"Cannot write '{path.name}'; use a .csv or .parquet file name.")
    X = np.asarray(X, dtype=np.float32)
    names = np.asarray([str(n) for n in label_names], dtype=object)
    if X.ndim == 3:
        height, width = X.shape[1:]
        columns = [f"px_{r}_{c}" for r in range(height) for c in range(width)]
    else:
        columns = [f"f{k}" for k in range(X.shape[1])]
    flat = X.reshape(len(X), -1)
    if suffix == ".csv" and decimals is not None:
        flat = np.round(flat, decimals)
    arrays = [pa.array(names[np.asarray(y, dtype=np.int64)].tolist(), pa.string())]
    arrays += [pa.array(flat[:, k]) for k in range(flat.shape[1])]
    table = pa.Table.from_arrays(arrays, names=["label", *columns])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if suffix == ".csv":
        import pyarrow.csv as pa_csv

        pa_csv.write_csv(table, tmp)
    else:
        import pyarrow.parquet as pq

        pq.write_table(table, tmp)
    tmp.replace(path)
    return path


def save_dataset(ds: Dataset, path: str | Path) -> Path:
    """Write a dataset with ``write_table`` (images keep their shape via px_ columns)."""
    X, y = to_arrays(ds)
    shape = input_shape(ds)
    if len(shape) == 2:
        X = X.reshape(len(X), *shape)
    return write_table(path, X, y, label_names(ds))
