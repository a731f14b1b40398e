"""Reading ``.npz`` arrays without trusting them: the archive is checked like any zip,
every array header before its data, and nothing is unpickled."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from soartlab.errors import DataError
from soartlab.io.archives import check_members, open_zip
from soartlab.io.limits import Limits
from soartlab.io.messages import FOREIGN_ERRORS, foreign_error_text, mib
from soartlab.io.raw import RawData


def _check_npy_header(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, archive: str, limits: Limits
) -> None:
    """Refuse an array before loading it: object dtype, or a header declaring more data
    than the entry holds (NumPy would allocate the declared size first)."""
    if not info.filename.endswith(".npy"):
        return
    key = info.filename[: -len(".npy")]
    try:
        with zf.open(info) as fp:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
    except FOREIGN_ERRORS as exc:
        raise DataError(
            f"'{archive}' is not a valid .npz file: array '{key}' ({foreign_error_text(exc)})."
        ) from None
    if dtype.hasobject:
        raise DataError(
            f"'{archive}' holds '{key}' as an object array, which would need unpickling; "
            "refused. Save plain numeric / string arrays (np.savez with allow_pickle=False)."
        )
    if any(size < 0 for size in shape):
        raise DataError(
            f"'{archive}' is not a valid .npz file: array '{key}' declares the shape "
            f"{_shape_text(shape)}, with a negative size."
        )
    declared = math.prod(shape) * dtype.itemsize  # Python integers: 10**400 does not overflow
    if declared > info.file_size:
        raise DataError(
            f"'{archive}' is not a valid .npz file: array '{key}' declares shape "
            f"{_shape_text(shape)} ({mib(declared)}) but holds only {mib(info.file_size)}."
        )
    if key == "X" and len(shape) >= 1 and shape[0] > limits.max_rows:
        raise DataError(f"'{archive}': X has {shape[0]:,} rows; the limit is {limits.max_rows:,}.")


def _shape_text(shape: tuple[int, ...], limit: int = 60) -> str:
    """A declared shape for a message; a hostile header may declare a 400-digit size."""
    text = str(tuple(shape))
    return text if len(text) <= limit else text[:limit] + "…)"


def read_npz(path: Path, limits: Limits, **_other_options: object) -> RawData:
    """An ``.npz`` with ``X`` ((N, d) or (N, H, W)), ``y`` (N,) and optional ``label_names``.

    The archive is checked like any zip first; arrays load with ``allow_pickle=False``.
    Samples are X as stored; a 3-D X is images of its own (H, W).
    """
    archive = path.name
    arrays = _load_arrays(path, limits)
    features, labels = arrays["X"], arrays["y"]
    if features.dtype.kind not in "biuf" or features.ndim not in (2, 3):
        raise DataError(
            f"'{archive}': X must be a numeric array of shape (N, d) or (N, H, W); got "
            f"dtype {features.dtype} with shape {features.shape}."
        )
    if labels.ndim != 1 or len(labels) != len(features):
        raise DataError(
            f"'{archive}': y must be 1-D with one label per row of X; got shape {labels.shape} "
            f"for X of shape {features.shape}."
        )
    names = None
    if "label_names" in arrays:
        raw_names = arrays["label_names"]
        if raw_names.ndim != 1 or raw_names.dtype.kind not in "USiu":
            raise DataError(
                f"'{archive}': label_names must be a 1-D array of strings; got dtype "
                f"{raw_names.dtype} with shape {raw_names.shape}."
            )
        names = [str(name) for name in _decoded(raw_names, "label_names", archive).tolist()]
    if labels.dtype.kind not in "biufUS":
        raise DataError(f"'{archive}': y must hold integers or strings; got dtype {labels.dtype}.")
    labels = _decoded(labels, "y", archive)
    shape = tuple(features.shape[1:]) if features.ndim == 3 else None
    return RawData(features, labels, label_names=names, image_shape=shape)


def _decoded(values: np.ndarray, key: str, archive: str) -> np.ndarray:
    """A bytes array (NumPy dtype "S") as text (N,), read as UTF-8; any other array as it is."""
    if values.dtype.kind != "S":
        return values
    try:
        return np.array([v.decode("utf-8") for v in values.tolist()], dtype=object)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"'{archive}': {key} holds bytes that are not UTF-8 text ({exc.object[:40]!r}). "
            "Save the class names as str (NumPy dtype 'U') or as UTF-8 bytes."
        ) from None


def _load_arrays(path: Path, limits: Limits) -> dict[str, np.ndarray]:
    """``X``, ``y`` and, when stored, ``label_names`` from a checked archive, unpickling
    nothing."""
    archive = path.name
    with open_zip(path, kind=".npz (zip)") as zf:
        for info in check_members(zf, archive, limits):
            _check_npy_header(zf, info, archive, limits)
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"'{archive}' is not a valid .npz file ({exc}).") from None
    with npz:
        keys = list(npz.files)
        missing = [key for key in ("X", "y") if key not in keys]
        if missing:
            raise DataError(
                f"'{archive}' has no array {' or '.join(repr(k) for k in missing)}; arrays "
                f"found: {', '.join(keys) or 'none'}. Expected X (N×d or N×H×W) and y (N labels)."
            )
        arrays = {}
        for key in ("X", "y", "label_names"):
            if key not in keys:
                continue
            try:
                arrays[key] = npz[key]
            except ValueError as exc:
                if "allow_pickle" in str(exc) or "object" in str(exc).lower():
                    raise DataError(
                        f"'{archive}' holds '{key}' as an object array, which would need "
                        "unpickling; refused. Save plain numeric / string arrays "
                        "(np.savez with allow_pickle=False)."
                    ) from None
                raise DataError(f"'{archive}' is not a valid .npz file ({exc}).") from None
            except (OSError, EOFError, zipfile.BadZipFile) as exc:
                raise DataError(f"'{archive}' is not a valid .npz file ({exc}).") from None
    return arrays
