"""The upload path of the Data page: bytes → per-session temp file → engine loader.

Kept out of the page so it can be called and tested without a file_uploader (AppTest
cannot drive one): the page, and tests, put ``(name, bytes, label_column)`` under
``state.PENDING_UPLOAD`` and call :func:`apply_pending_upload`.
"""

from __future__ import annotations

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

# Every uploader of data takes these (.xls too: the loader says how to save it as .xlsx,
# where the browser would only refuse it with a MIME-type message shown on hover).
UPLOAD_TYPES = ("csv", "tsv", "xlsx", "xls", "parquet", "npz", "zip")
LAST_UPLOAD = "soart_last_upload"  # signature of the upload already applied
UPLOAD_MESSAGE = "soart_upload_message"  # (kind, text) shown after the load
EXAMPLES_PER_CLASS = 8
MAX_EXAMPLES = 64  # thumbnails on the Data page in all: fewer per class when there are many


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
    id_columns: list[str] | None = None,
    sheet: str | None = None,
    image_size: tuple[int, int] | None = None,
    run: Any = None,
) -> Any:
    """Validate uploaded ``data`` with ``soartlab.data.load_dataset``; ``DataError`` if bad.
    ``run``: a lot for this run (``workflow.load_lot``: its image size and input shape).

    The bytes go to a temp file private to this call (the user's file name is never
    used as a path) that is removed once the loader is done.
    """
    from soartlab.data import load_dataset
    from soartlab.workflow import load_lot

    suffix = upload_suffix(name)
    options = {"label_column": label_column, "id_columns": id_columns, "sheet": sheet}
    with tempfile.TemporaryDirectory(prefix="soartlab-upload-") as folder:
        path = Path(folder) / f"upload.{suffix}"
        path.write_bytes(data)
        if run is not None:
            return load_lot(run, path, **options)
        return load_dataset(
            path,
            input_shape=input_shape,
            require_labels=require_labels,
            image_size=image_size,
            **options,
        )


def table_outline(name: str, data: bytes, sheet: str | None = None) -> Any:
    """The sheets and column names of an uploaded table (header only), for the sheet,
    label-column and ID-column choices (``io.Outline``; empty for non-tables or when the
    header cannot be read: the loader gives the real message then)."""
    from soartlab.io import Outline, outline

    try:
        suffix = upload_suffix(name)
    except DataError:
        return Outline([], [])
    with tempfile.TemporaryDirectory(prefix="soartlab-upload-") as folder:
        path = Path(folder) / f"upload.{suffix}"
        path.write_bytes(data)
        try:
            return outline(path, sheet)
        except DataError:
            return Outline([], [])


def table_columns(name: str, data: bytes) -> list[str]:
    """Column names of an uploaded table (header only); [] for non-tables."""
    return table_outline(name, data).columns


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
    defaults = ("", b"", "label", "", {})  # (name, bytes, label column, shape, options)
    name, data, label_column, shape_text, options = tuple(pending) + defaults[len(pending) :]
    guard = EngineErrors(_("Could not load '{name}': ").format(name=name), show=False)
    dataset = None
    with guard:
        dataset = load_from_bytes(
            name,
            data,
            label_column=label_column or "label",
            input_shape=parse_shape(shape_text),
            **dict(options or {}),
        )
    if guard.failed or dataset is None:
        st.session_state[UPLOAD_MESSAGE] = ("error", guard.message)
        return False
    state.set_dataset(dataset, name)
    # ui.workspace keeps the file after the page, so a refresh loads it again
    state.uploaded(name, data, label_column or "label", shape_text or "", dict(options or {}))
    st.session_state[UPLOAD_MESSAGE] = (
        "success",
        _("Loaded '{name}': {n} samples.").format(name=name, n=f"{len(dataset):,}"),
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
    example_files: dict[str, list[str]]  # class name → the examples' file names ([] if none)
    id_columns: list[str]  # the dataset's ID columns (part number, lot, file name)
    notes: dict  # what reading the file found (`data.file_notes`)


def examples_per_class(n_classes: int) -> int:
    """Thumbnails per class: every class gets some, ``MAX_EXAMPLES`` in all (2 at least)."""
    return max(2, min(EXAMPLES_PER_CLASS, MAX_EXAMPLES // max(n_classes, 1)))


def summarize(data: state.LoadedData, per_class: int | None = None) -> DataSummary:
    """Class counts, shape, normalisation and example images of every class (a few
    each, with their file names when the data has them), cached per dataset."""

    def compute() -> DataSummary:
        from soartlab.data import (
            Normalization,
            file_notes,
            id_columns,
            id_table,
            input_shape,
            label_names,
            to_arrays,
        )

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
        example_files: dict[str, list[str]] = {}
        files = id_table(data.dataset).get("file") if is_image else None
        each = per_class or examples_per_class(len(names))
        if is_image:
            for index, name in enumerate(names):
                rows = np.flatnonzero(y == index)[:each]
                examples[name] = X[rows].reshape((len(rows),) + shape)
                example_files[name] = [files[r] for r in rows] if files else []
        return DataSummary(
            names,
            counts,
            shape,
            is_image,
            words,
            examples,
            example_files,
            id_columns(data.dataset),
            file_notes(data.dataset),
        )

    return state.cached("data_summary", (data.version, current_language()), compute)


def example_grid(summary: DataSummary) -> tuple[np.ndarray, list[str], list[str], int]:
    """Example images of every class, one row each ``(K·n, H, W)``, their titles (the
    class name over its first image), captions (file names, or "") and ``n``.

    A class with fewer examples is padded with blank images so rows stay aligned.
    """
    each = max((len(images) for images in summary.examples.values()), default=0)
    rows, titles, captions = [], [], []
    for name, images in summary.examples.items():
        padded = np.ones((each,) + tuple(summary.input_shape), dtype=np.float32)
        padded[: len(images)] = images[:each]
        rows.append(padded)
        titles += [name] + [""] * (each - 1)
        files = summary.example_files.get(name) or []
        captions += [str(f).rsplit("/", 1)[-1] for f in files] + [""] * (each - len(files))
    if not rows:
        return np.zeros((0, 1, 1), dtype=np.float32), [], [], 1
    return np.concatenate(rows), titles, captions, each


def classes_text(summary: DataSummary) -> str:
    """ "良品 (120), キズ (30), …": the classes found, with their counts."""
    return ", ".join(
        f"{name} ({int(count):,})"
        for name, count in zip(summary.label_names, summary.counts, strict=True)
    )


def reading_notes(summary: DataSummary) -> list[str]:
    """What reading the file found, in words: the encoding, the sheet, the image sizes."""
    from soartlab.io.text import encoding_name

    notes, lines = summary.notes, []
    if notes.get("encoding"):
        lines.append(_("Read as {encoding}.").format(encoding=encoding_name(notes["encoding"])))
    if notes.get("sheet"):
        lines.append(_("Sheet {sheet}.").format(sheet=repr(notes["sheet"])))
    if notes.get("image_sizes"):
        lines.append(_("Image sizes found: {sizes}.").format(sizes=notes["image_sizes"]))
    return lines


def resize_note(summary: DataSummary, n_samples: int) -> str | None:
    """A warning when images were enlarged or squashed to the training size; None when
    every image kept its size (or the data are not images read from files)."""
    resized = int(summary.notes.get("resized") or 0)
    if not summary.is_image or not resized:
        return None
    return _(
        "{resized} of {n} images were resized to {size} (enlarged, shrunk or squashed): "
        "details the model sees differ from the files. Sizes found: {sizes}."
    ).format(
        resized=f"{resized:,}",
        n=f"{n_samples:,}",
        size=summary.notes.get("image_size", ""),
        sizes=summary.notes.get("image_sizes", ""),
    )
