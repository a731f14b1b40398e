"""The upload path of the Data page: bytes → per-session temp file → engine loader.

Kept out of the page so it can be called and tested without a file_uploader (AppTest
cannot drive one): the page, and tests, put ``(name, bytes, label_column)`` under
``state.PENDING_UPLOAD`` and call :func:`apply_pending_upload`.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from soartlab.errors import DataError
from soartlab.ui import state
from soartlab.ui.feedback import EngineErrors
from soartlab.ui.i18n import _, current_language

UPLOAD_TYPES = ("csv", "tsv", "parquet", "npz", "zip")
LAST_UPLOAD = "soart_last_upload"  # signature of the upload already applied
UPLOAD_MESSAGE = "soart_upload_message"  # (kind, text) shown after the load
EXAMPLES_PER_CLASS = 8


def upload_suffix(name: str) -> str:
    """The lower-case suffix of an uploaded file name; only the suffix is ever used."""
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix not in UPLOAD_TYPES:
        raise DataError(
            _("File '{name}' has an unsupported type; expected one of {types}.").format(
                name=name, types=", ".join(f".{t}" for t in UPLOAD_TYPES)
            )
        )
    return suffix


def load_from_bytes(
    name: str,
    data: bytes,
    *,
    label_column: str = "label",
    input_shape: tuple[int, int] | None = None,
    require_labels: bool = True,
) -> Any:
    """Validate uploaded ``data`` with ``soartlab.data.load_dataset``; ``DataError`` if bad.

    The bytes go to a temp file private to this call (the user's file name is never
    used as a path) that is removed once the loader is done.
    """
    from soartlab.data import load_dataset

    suffix = upload_suffix(name)
    with tempfile.TemporaryDirectory(prefix="soartlab-upload-") as folder:
        path = Path(folder) / f"upload.{suffix}"
        path.write_bytes(data)
        return load_dataset(
            path, label_column=label_column, input_shape=input_shape, require_labels=require_labels
        )


def table_columns(name: str, data: bytes) -> list[str]:
    """Column names of an uploaded table (header only), for the label-column choice.

    Returns [] for non-tables or when the header cannot be read; the loader gives the
    real message then.
    """
    try:
        suffix = upload_suffix(name)
    except DataError:
        return []
    try:
        if suffix in ("csv", "tsv"):
            import pandas as pd

            header = pd.read_csv(io.BytesIO(data), sep="\t" if suffix == "tsv" else ",", nrows=0)
            return [str(c) for c in header.columns]
        if suffix == "parquet":
            import pyarrow.parquet as pq

            return [str(c) for c in pq.read_schema(io.BytesIO(data)).names]
    except (ValueError, OSError, UnicodeDecodeError):
        return []
    return []


def parse_shape(text: str) -> tuple[int, int] | None:
    """'36x39' → (36, 39); '' → None. ``DataError`` on anything else."""
    text = text.strip().lower().replace("×", "x").replace(",", "x").replace(" ", "")
    if not text:
        return None
    parts = text.split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise DataError(
            _("Image shape '{text}': expected two positive integers like 36x39.").format(text=text)
        )
    return int(parts[0]), int(parts[1])


def apply_pending_upload() -> bool:
    """Load the upload waiting under ``state.PENDING_UPLOAD`` into the session.

    On success the dataset replaces the session's data; on a ``DataError`` the
    previously loaded data stays. Either way the outcome is kept under
    ``UPLOAD_MESSAGE`` for :func:`show_upload_message`. Returns success.
    """
    pending = st.session_state.pop(state.PENDING_UPLOAD, None)
    if pending is None:
        return False
    name, data, label_column, shape_text = (tuple(pending) + ("label", ""))[:4]
    guard = EngineErrors(_("Could not load '{name}': ").format(name=name), show=False)
    dataset = None
    with guard:
        dataset = load_from_bytes(
            name, data, label_column=label_column or "label", input_shape=parse_shape(shape_text)
        )
    if guard.failed or dataset is None:
        st.session_state[UPLOAD_MESSAGE] = ("error", guard.message)
        return False
    state.set_dataset(dataset, name)
    st.session_state[UPLOAD_MESSAGE] = (
        "success", _("Loaded '{name}': {n:,} samples.").format(name=name, n=len(dataset))
    )
    return True


def show_upload_message() -> None:
    """The outcome of the last upload: ``st.error`` with the engine's message, or success."""
    message = st.session_state.get(UPLOAD_MESSAGE)
    if message is None:
        return
    kind, text = message
    if kind == "error":
        st.error(text)
    else:
        st.success(text)


@dataclass(frozen=True)
class DataSummary:
    """What the Data page shows about the session's dataset."""

    label_names: list[str]
    counts: np.ndarray  # (K,) samples per class
    input_shape: tuple[int, ...]
    is_image: bool
    normalization: str  # in words
    examples: dict[str, np.ndarray]  # class name → (n, H, W) images (image data only)


def summarize(data: state.LoadedData, per_class: int = EXAMPLES_PER_CLASS) -> DataSummary:
    """Class counts, shape, normalisation and example images, cached per dataset."""

    def compute() -> DataSummary:
        from soartlab.data import Normalization, input_shape, label_names, to_arrays

        names = list(label_names(data.dataset))
        X, y = to_arrays(data.dataset)
        shape = tuple(input_shape(data.dataset))
        counts = np.bincount(y, minlength=len(names))
        is_image = len(shape) == 2
        norm = Normalization.fit(X, per_feature=not is_image)
        mean, std = np.atleast_1d(norm.mean), np.atleast_1d(norm.std)
        if is_image:
            words = _("one global mean {mean:.3g} and std {std:.3g} over all pixels").format(
                mean=float(mean[0]), std=float(std[0])
            )
        else:
            words = _("per feature ({n} means and stds; mean of means {mean:.3g})").format(
                n=len(mean), mean=float(mean.mean())
            )
        words += _(", refitted on the training split when training starts")
        examples: dict[str, np.ndarray] = {}
        if is_image:
            for index, name in enumerate(names):
                rows = np.flatnonzero(y == index)[:per_class]
                examples[name] = X[rows].reshape((len(rows),) + shape)
        return DataSummary(names, counts, shape, is_image, words, examples)

    return state.cached("data_summary", (data.version, current_language()), compute)


def example_grid(summary: DataSummary) -> tuple[np.ndarray, list[str]]:
    """Example images of every class, one row each ``(K·n, H, W)``, and their titles.

    A class with fewer examples is padded with blank images so rows stay aligned.
    """
    rows, titles = [], []
    for name, images in summary.examples.items():
        padded = np.ones((EXAMPLES_PER_CLASS,) + tuple(summary.input_shape), dtype=np.float32)
        padded[: len(images)] = images[:EXAMPLES_PER_CLASS]
        rows.append(padded)
        titles += [name] + [""] * (EXAMPLES_PER_CLASS - 1)
    if not rows:
        return np.zeros((0, 1, 1), dtype=np.float32), []
    return np.concatenate(rows), titles
