"""Tables out, the way Japanese Excel opens them: ``.xlsx`` and CSV with a UTF-8 BOM.

Japanese Excel reads a CSV without a byte-order mark as Shift-JIS, so class names such
as 良品 open garbled: every CSV written here starts with the UTF-8 BOM (``utf-8-sig``).
Text that Excel would run as a formula — a cell starting with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return (class names such as ``=cmd|…``, part numbers such as
``-A1``) — is written so it stays text (OWASP's advice on CSV injection): in a CSV it is
prefixed with ``'``; in an ``.xlsx`` it is stored as a string cell marked
``quotePrefix`` (Excel shows it as typed and never evaluates it). Only text columns are
touched: numbers such as -0.5 stay numbers.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from soartlab.errors import SoartLabError

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""A text cell starting with one of these is a formula (or turns into one) in Excel."""

TABLE_SUFFIXES = (".csv", ".xlsx")

_SHEET_NAME_BAD = re.compile(r"[\[\]:*?/\\]")
_MAX_SHEET_NAME = 31  # Excel's limit


def escape_formula(text: str) -> str:
    """``text`` made safe for a CSV opened in Excel: ``'`` before a formula start."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _text_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c].dtype)]


def csv_safe(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` whose text cells are escaped with `escape_formula` (and whose
    text column names are too); numeric and boolean columns are unchanged."""
    safe = table.copy()
    for column in _text_columns(safe):
        safe[column] = [escape_formula(v) if isinstance(v, str) else v for v in safe[column]]
    safe.columns = [escape_formula(str(c)) for c in safe.columns]
    return safe


def csv_bytes(table: pd.DataFrame) -> bytes:
    """``table`` as CSV in UTF-8 with a byte-order mark (what Japanese Excel opens
    correctly), CRLF line ends, formulas escaped (`csv_safe`), no index."""
    text = csv_safe(table).to_csv(index=False, lineterminator="\r\n")
    return text.encode("utf-8-sig")


def xlsx_bytes(sheets: Mapping[str, pd.DataFrame] | pd.DataFrame) -> bytes:
    """One sheet per table (``{sheet name: table}``; a lone table is the sheet
    "predictions") as an ``.xlsx``: a header row, then one row per table row. Text is
    stored as text (never as a formula: see the module notes), numbers as numbers, NaN as
    an empty cell."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    if isinstance(sheets, pd.DataFrame):
        sheets = {"predictions": sheets}
    if not sheets:
        raise SoartLabError("Nothing to write: no tables were given.")
    book = Workbook()
    book.remove(book.active)
    used: set[str] = set()
    for title, table in sheets.items():
        sheet = book.create_sheet(_sheet_title(title, used))
        for j, column in enumerate(table.columns, start=1):
            _put(sheet.cell(row=1, column=j), str(column)).font = Font(bold=True)
        for i, row in enumerate(table.itertuples(index=False, name=None), start=2):
            for j, value in enumerate(row, start=1):
                _put(sheet.cell(row=i, column=j), value)
        sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _put(cell, value):
    """Write one value: text as a string cell (quote-prefixed when Excel would run it),
    NumPy scalars as Python numbers, NaN and None as an empty cell."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        cell.value = None
    elif isinstance(value, bool | int | float):
        cell.value = value
    else:
        text = str(value)
        cell.value = text
        cell.data_type = "s"  # openpyxl would store "=…" as a formula otherwise
        if text.startswith(FORMULA_STARTS):
            cell.quotePrefix = True
    return cell


def _sheet_title(title: str, used: set[str]) -> str:
    """A sheet name Excel accepts (31 characters, none of []:*?/\\), unique in the book."""
    base = _SHEET_NAME_BAD.sub("_", str(title)).strip("'") or "sheet"
    base = base[:_MAX_SHEET_NAME]
    name, k = base, 2
    while name.lower() in used:
        suffix = f" ({k})"
        name, k = base[: _MAX_SHEET_NAME - len(suffix)] + suffix, k + 1
    used.add(name.lower())
    return name


def table_bytes(suffix: str, sheets: Mapping[str, pd.DataFrame] | pd.DataFrame) -> bytes:
    """The bytes of a ``.csv`` (the first table only) or an ``.xlsx`` (every table)."""
    suffix = suffix.lower()
    if suffix == ".xlsx":
        return xlsx_bytes(sheets)
    if suffix == ".csv":
        table = sheets if isinstance(sheets, pd.DataFrame) else next(iter(sheets.values()))
        return csv_bytes(table)
    raise SoartLabError(
        f"Cannot write a '{suffix or '(none)'}' table; use {' or '.join(TABLE_SUFFIXES)}."
    )


def write_table(path: str | Path, sheets: Mapping[str, pd.DataFrame] | pd.DataFrame) -> Path:
    """Write `table_bytes` for ``path``'s suffix to ``path`` (atomically)."""
    from soartlab.files import atomic_write_bytes

    path = Path(path)
    atomic_write_bytes(path, table_bytes(path.suffix, sheets))
    return path
