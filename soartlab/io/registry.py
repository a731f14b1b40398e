"""Which reader reads which file: one entry per file suffix.

Every reader has the signature ``(path: Path, limits: Limits, **options) -> RawData``.
``load_dataset`` passes every reader the same keyword options (``label_column``,
``image_size``, ``require_labels``, ``id_columns``, ``sheet``); a reader names the ones it uses as keyword-only
parameters and ignores the rest. A new format is one such function, added here.

Readers raise ``DataError`` with specific messages where they know what is wrong; whatever
else the libraries under them raise on a hostile file is turned into a ``DataError``
naming the file, once, by ``reading``.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from soartlab.errors import DataError, SoartLabError
from soartlab.io.archives import read_image_zip
from soartlab.io.excel import read_xls, read_xlsx, sheet_names
from soartlab.io.limits import Limits
from soartlab.io.messages import FOREIGN_ERRORS, foreign_error_text
from soartlab.io.npz import read_npz
from soartlab.io.raw import RawData
from soartlab.io.tables import read_delimited, read_parquet
from soartlab.io.text import decode_text

Reader = Callable[..., RawData]
"""(path: Path, limits: Limits, **options) -> RawData"""

READERS: dict[str, Reader] = {
    ".csv": read_delimited,
    ".tsv": read_delimited,
    ".parquet": read_parquet,
    ".npz": read_npz,
    ".zip": read_image_zip,  # one folder of images per class
    ".xlsx": read_xlsx,  # one sheet of an Excel workbook
    ".xls": read_xls,  # refused: the old Excel format, with what to do instead
}

SUPPORTED_SUFFIXES = tuple(s for s in READERS if READERS[s] is not read_xls)
"""The suffixes a file may have (``.xls`` has a reader only to say what to do instead)."""


def reader_for(path: Path) -> Reader:
    """The reader registered for ``path``'s suffix (case-insensitive); DataError listing
    the supported suffixes otherwise."""
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise DataError(
            f"'{path.name}' has an unsupported file type '{suffix or '(none)'}'; supported "
            f"formats: {', '.join(SUPPORTED_SUFFIXES)}."
        )
    return READERS[suffix]


@dataclass(frozen=True)
class Outline:
    """What a page asks of a file before loading it: its sheets and column names."""

    sheets: list[str]  # a workbook's sheet names; [] for other files
    columns: list[str]  # the header of a table (of ``sheet``); [] for images and arrays


def outline(path: Path, sheet: str | None = None, limits: Limits = Limits()) -> Outline:  # noqa: B008
    """The sheets and columns of a table file (``sheet``: of a workbook, default the
    first), read from the header only; `DataError` when the file cannot be read (the
    loader then says the same)."""
    suffix = path.suffix.lower()
    with reading(path):
        if suffix in (".csv", ".tsv"):
            with path.open("rb") as stream:
                head = stream.read(1 << 16)
            if head.startswith((b"\xff\xfe", b"\xfe\xff")):
                head = head[: len(head) // 2 * 2]
            elif b"\n" in head:  # never inside a character: cp932 trail bytes are ≥ 0x40
                head = head[: head.rindex(b"\n")]
            text, _ = decode_text(head, path.name)
            line = text.splitlines()[0] if text.strip() else ""
            delimiter = "\t" if suffix == ".tsv" else ","
            columns = next(csv.reader([line], delimiter=delimiter), [])
            return Outline([], [c for c in columns if c.strip()] if columns else [])
        if suffix == ".parquet":
            return Outline([], [str(c) for c in pq.read_schema(path).names])
        if suffix == ".xlsx":
            from openpyxl import load_workbook

            sheets = sheet_names(path, limits)
            book = load_workbook(path, read_only=True, data_only=True)
            try:
                chosen = sheet if sheet in sheets else sheets[0]
                first = next(book[chosen].iter_rows(max_row=1, values_only=True), ())
            finally:
                book.close()
            return Outline(sheets, [str(v).strip() for v in first if v not in (None, "")])
    return Outline([], [])


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Around everything done with the content of ``path``: an exception a library raises
    on a bad file (``FOREIGN_ERRORS``: an overflowing declared shape, a broken image,
    Arrow refusing a column, text that is not UTF-8, ...) becomes a ``DataError`` naming
    the file. Our own errors pass unchanged."""
    try:
        yield
    except SoartLabError:
        raise
    except FOREIGN_ERRORS as exc:
        raise DataError(
            f"'{path.name}' cannot be read ({foreign_error_text(exc)}). Check that it is a "
            f"complete, valid {path.suffix.lower() or 'data'} file in one of the layouts the "
            "README describes."
        ) from exc
