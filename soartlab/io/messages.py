"""How DataError messages name rows, columns and sizes, the same way for every reader, and
which foreign exceptions a reader can raise on a bad file."""

from __future__ import annotations

import csv
import struct
import zipfile
import zlib

import numpy as np
import pyarrow as pa
from PIL import Image

FOREIGN_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # also UnicodeError and pyarrow's ArrowInvalid
    TypeError,
    LookupError,  # KeyError, IndexError
    ArithmeticError,  # OverflowError from a declared size
    EOFError,
    OSError,  # also PIL's UnidentifiedImageError
    MemoryError,  # an allocation sized by the file
    RecursionError,  # deeply nested metadata
    NotImplementedError,  # also pyarrow's ArrowNotImplementedError, zip compression methods
    SyntaxError,  # PIL on some broken headers
    csv.Error,
    struct.error,
    zlib.error,
    zipfile.BadZipFile,
    pa.ArrowException,
    Image.DecompressionBombError,
)
"""What the libraries under a reader (NumPy, pyarrow, PIL, zipfile, zlib, csv) raise on a
file they cannot read. ``SoartLabError`` is a ``ValueError`` too: re-raise it before
catching these."""


def foreign_error_text(exc: BaseException, limit: int = 200) -> str:
    """``"OverflowError: int too large …"``, shortened to about ``limit`` characters (a
    library may quote the whole offending value)."""
    text = str(exc).strip()
    if len(text) > limit:
        text = text[:limit] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def rows_text(rows: np.ndarray, limit: int = 5) -> str:
    """0-based row indices → "2, 4, 7 and 12 more" (rows counted from 1, as people count)."""
    shown = ", ".join(str(int(r) + 1) for r in rows[:limit])
    more = f" and {len(rows) - limit:,} more" if len(rows) > limit else ""
    return f"{shown}{more}"


def columns_text(names: list[str], limit: int = 12) -> str:
    """Column names quoted, the first ``limit`` of them and how many there are in all."""
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" … ({len(names)} in all)" if len(names) > limit else "")


def mib(n_bytes: int) -> str:
    """Bytes as MiB; a size declared by a hostile header may be beyond any float."""
    if n_bytes >= 2**70:
        return f"about 10^{len(str(int(n_bytes))) - 1} bytes"
    return f"{n_bytes / 2**20:,.1f} MiB"
