"""How DataError messages name rows, columns and sizes, the same way for every reader."""

from __future__ import annotations

import numpy as np


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
    return f"{n_bytes / 2**20:,.1f} MiB"
