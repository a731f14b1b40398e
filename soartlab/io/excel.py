"""Excel workbooks (``.xlsx``) as tables, read with openpyxl; old ``.xls`` refused clearly.

An ``.xlsx`` is a zip of XML parts: its directory is checked like any upload's (entry
count, declared sizes, compression ratios: ``archives.check_members``) before openpyxl
opens it. Formulas give their cached values (what Excel last showed), as
``data_only=True`` reads them. The first sheet is read unless ``sheet`` names another;
``notes`` record the sheet read and every sheet's name, so the Data page can offer the
choice. The first row is the header; empty rows at the end (formatting) are dropped.
"""

from __future__ import annotations

import datetime
import zipfile
from pathlib import Path

import pyarrow as pa

from soartlab.errors import DataError
from soartlab.io.archives import check_members, open_zip
from soartlab.io.limits import Limits
from soartlab.io.raw import RawData
from soartlab.io.tables import table_to_raw

_SAVE_AS = "In Excel: File → Save As → 'Excel Workbook (*.xlsx)' or 'CSV UTF-8 (Comma delimited)'."


def sheet_names(path: Path, limits: Limits = Limits()) -> list[str]:  # noqa: B008 - frozen
    """The sheet names of a workbook, in workbook order (after the zip checks)."""
    with _open_workbook(path, limits) as book:
        return list(book.sheetnames)


class _Workbook:
    """openpyxl's read-only workbook, closed on exit (it keeps the zip open)."""

    def __init__(self, book) -> None:
        self.book = book

    def __enter__(self):
        return self.book

    def __exit__(self, *_exc) -> None:
        self.book.close()


def _open_workbook(path: Path, limits: Limits) -> _Workbook:
    from openpyxl import load_workbook

    if not zipfile.is_zipfile(path):
        raise DataError(
            f"'{path.name}' is not a valid Excel .xlsx file (an .xlsx is a zip archive; this "
            f"is not one). {_SAVE_AS}"
        )
    with open_zip(path, kind="Excel .xlsx") as zf:
        check_members(zf, path.name, limits)  # a zip bomb is refused before openpyxl reads
        if "xl/workbook.xml" not in zf.namelist():
            raise DataError(
                f"'{path.name}' is a zip but not an Excel workbook (no xl/workbook.xml). {_SAVE_AS}"
            )
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"'{path.name}' cannot be read as an Excel workbook ({type(exc).__name__}: "
            f"{str(exc)[:160]}). {_SAVE_AS}"
        ) from None
    return _Workbook(book)


def read_xlsx(
    path: Path,
    limits: Limits,
    *,
    label_column: str,
    image_size: tuple[int, int] | None,
    require_labels: bool,
    sheet: str | None = None,
    id_columns: list[str] | None = None,
    **_other_options: object,
) -> RawData:
    """One sheet of an ``.xlsx`` (the first, or ``sheet``) → ``RawData`` as for a CSV:
    the label column and ID columns as text, the rest numeric features."""
    name = path.name
    with _open_workbook(path, limits) as book:
        sheets = list(book.sheetnames)
        chosen = sheets[0] if sheet is None else sheet
        if chosen not in sheets:
            raise DataError(
                f"'{name}' has no sheet {chosen!r}; its sheets are "
                f"{', '.join(repr(s) for s in sheets)}."
            )
        rows = _sheet_rows(book[chosen], f"'{name}' sheet {chosen!r}", limits)
    if not rows:
        raise DataError(
            f"'{name}' sheet {chosen!r} is empty: no data rows. Expected a header row and "
            "data rows."
        )
    header = ["" if v is None else str(v).strip() for v in rows[0]]
    body = rows[1:]
    text_columns = {label_column.lower(), *(c.lower() for c in (id_columns or []))}
    arrays = [
        _column([row[j] for row in body], as_text=header[j].lower() in text_columns)
        for j in range(len(header))
    ]
    table = pa.Table.from_arrays(arrays, names=header)
    raw = table_to_raw(
        table,
        f"{name}' sheet '{chosen}",
        limits,
        label_column=label_column,
        image_size=image_size,
        require_labels=require_labels,
        id_columns=id_columns,
    )
    return RawData(
        raw.samples,
        raw.labels,
        label_names=raw.label_names,
        image_shape=raw.image_shape,
        columns=raw.columns,
        notes={**raw.notes, "sheet": chosen, "sheets": sheets},
        ids=raw.ids,
    )


def _sheet_rows(sheet, where: str, limits: Limits) -> list[tuple]:
    """The rows of a sheet as value tuples of one width, trailing empty rows and columns
    dropped; the sheet's declared size and the rows read are kept within ``limits``."""
    declared_rows, declared_columns = sheet.max_row or 0, sheet.max_column or 0
    if declared_rows - 1 > limits.max_rows:
        raise DataError(
            f"{where} has {declared_rows - 1:,} rows; the limit is {limits.max_rows:,}."
        )
    if declared_columns > limits.max_columns:
        raise DataError(
            f"{where} has {declared_columns:,} columns; the limit is {limits.max_columns:,}."
        )
    rows = []
    for row in sheet.iter_rows(values_only=True):
        rows.append(row)
        if len(rows) - 1 > limits.max_rows:
            raise DataError(f"{where} has more than {limits.max_rows:,} rows; that is the limit.")
    while rows and all(v is None or v == "" for v in rows[-1]):
        rows.pop()
    width = max((len(r) for r in rows), default=0)
    while width and all(len(r) < width or r[width - 1] in (None, "") for r in rows):
        width -= 1
    return [tuple(r[:width]) + (None,) * (width - len(r[:width])) for r in rows]


def _column(values: list, as_text: bool) -> pa.Array:
    """One sheet column as Arrow: numbers as float64 when every cell is a number (or
    empty), else text; ``as_text`` (the label, ID columns) always as text, a whole
    number written as an integer (Excel stores every number as a float)."""
    if not as_text and all(
        v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values
    ):
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    return pa.array([_cell_text(v) for v in values], pa.string())


def _cell_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    return str(value)


def read_xls(path: Path, limits: Limits, **_options: object) -> RawData:
    """Refuse the old binary Excel format, saying how to save the file instead."""
    raise DataError(
        f"'{path.name}' is an old Excel 97–2003 workbook (.xls), which SOART Lab does not "
        f"read. {_SAVE_AS}"
    )
