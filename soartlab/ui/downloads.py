"""Download buttons for tables: an Excel workbook and a CSV that Japanese Excel opens
(UTF-8 with a BOM), both with formula-like text kept as text (`soartlab.export`)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import streamlit as st

from soartlab.ui.i18n import _

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def table_downloads(
    tables: Mapping[str, Any], file_stem: str, key: str, label: str | None = None
) -> None:
    """Two buttons side by side: every table as a sheet of one ``.xlsx``, and the first
    table as a ``.csv``. The files are built on click."""
    from soartlab.export import csv_bytes, xlsx_bytes

    tables = dict(tables)
    first = next(iter(tables.values()))
    what = label or _("table")
    left, right = st.columns(2)
    left.download_button(
        _("Download {what} (.xlsx)").format(what=what),
        data=functools.partial(xlsx_bytes, tables),
        file_name=f"{file_stem}.xlsx",
        mime=XLSX_MIME,
        on_click="ignore",
        type="primary",
        key=f"{key}_xlsx",
        width="stretch",
        help=_("An Excel workbook: one sheet per table."),
    )
    right.download_button(
        _("Download {what} (.csv)").format(what=what),
        data=functools.partial(csv_bytes, first),
        file_name=f"{file_stem}.csv",
        mime="text/csv",
        on_click="ignore",
        key=f"{key}_csv",
        width="stretch",
        help=_("UTF-8 with a byte-order mark, which Japanese Excel opens correctly."),
    )
