"""Reading table files (CSV, TSV, Parquet) into feature arrays and raw labels.

A table has a label column and either numeric feature columns (``px_<row>_<col>`` names
make them an image), a ``features`` column of lists (text such as ``"[0.1, 0.2]"`` in CSV),
or, in Parquet, an ``image`` column as the Hugging Face hub writes it (``{bytes, path}``).
Other columns of text (part numbers such as ``A-00000``, lots, file names) are ID columns:
kept beside the samples, never features (``id_columns`` chooses them instead). An empty,
unnamed last column (a delimiter at the end of every line, as some Excel exports write)
is dropped. Text files are decoded by ``soartlab.io.text`` (UTF-8, BOM, UTF-16, cp932).
Sizes are checked from the file header (line count, column count, Parquet footer) before
everything is parsed. Rows in messages are data rows counted from 1; lines are file lines.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from soartlab.errors import DataError
from soartlab.io.images import (
    check_total_pixels,
    choose_image_size,
    declared_size,
    decode_image,
)
from soartlab.io.limits import Limits
from soartlab.io.messages import columns_text, mib, rows_text
from soartlab.io.raw import RawData
from soartlab.io.text import decode_text

PIXEL_COLUMN = re.compile(r"^px_(\d+)_(\d+)$")
"""Feature columns named px_<row>_<col> hold the pixels of a (rows × cols) image."""

_INDEX_COLUMNS = ("", "__index_level_0__", "Unnamed: 0")

_LINE_END = re.compile(r"\r\n|\r|\n")
"""LF, CRLF, or a lone CR (Excel for Mac), as the CSV parser itself reads them."""

_HUB_IMAGE = "{bytes: binary, path: string} with each image file's bytes embedded"

_MISSING_TEXT = frozenset(pa_csv.ConvertOptions().null_values)
"""Cells of a feature column that mean "no value" (NA, N/A, null, #N/A, ...): missing,
so reported as missing rather than as text. Labels are not read this way."""


# --- CSV / TSV ------------------------------------------------------------------------------


def read_delimited(
    path: Path,
    limits: Limits,
    *,
    label_column: str,
    image_size: tuple[int, int] | None,
    require_labels: bool,
    id_columns: list[str] | None = None,
    **_other_options: object,
) -> RawData:
    """Parse a CSV (``.csv``, comma-separated) or TSV (``.tsv``, tab-separated) file.

    The encoding is found by ``decode_text`` (UTF-8 with or without a byte-order mark,
    UTF-16, cp932, or charset-normalizer's guess) and kept in ``notes["encoding"]``.
    Lines may end in LF, CRLF or a lone CR (Excel for Mac). The label column, and the
    ``id_columns`` given, are read as text, exactly as written (``001`` stays ``001``,
    ``NA`` is a class); only an empty cell is a missing value.
    """
    name = path.name
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    raw_bytes = path.read_bytes()
    text, encoding = decode_text(raw_bytes, name)
    # Arrow parses UTF-8 bytes: a file already in UTF-8 is parsed as read, not re-encoded.
    data = raw_bytes if encoding == "utf-8" else text.encode("utf-8")
    header = _check_header(text, name, sep, limits)
    label_name = _find_label_column(header, label_column, name, required=False)
    as_text = [c for c in (id_columns or []) if c in header and c != label_name]
    table = _parse_delimited(data, text, name, sep, [label_name, *as_text])
    raw = table_to_raw(
        table,
        name,
        limits,
        label_column=label_column,
        image_size=image_size,
        require_labels=require_labels,
        id_columns=id_columns,
    )
    return dataclasses.replace(raw, notes={**raw.notes, "encoding": encoding})


def _check_header(text: str, name: str, sep: str, limits: Limits) -> list[str]:
    """The column names of a table (lines ending in LF, CRLF or CR). Refuses an empty or
    oversized table, or one with the wrong separator, from its line count and header
    alone, before anything is parsed."""
    if not text.strip():
        raise DataError(f"'{name}' is empty: no data rows. Expected a header line and data rows.")
    body = text.rstrip("\r\n")
    n_lines = body.count("\n") + body.count("\r") - body.count("\r\n") + 1
    if n_lines - 1 > limits.max_rows:
        raise DataError(
            f"'{name}' has {n_lines - 1:,} data rows; the limit is {limits.max_rows:,} rows."
        )
    header_line = _LINE_END.split(text, maxsplit=1)[0]
    header = next(csv.reader([header_line], delimiter=sep), [])
    if len(header) > limits.max_columns:
        raise DataError(
            f"'{name}' has {len(header):,} columns; the limit is {limits.max_columns:,} columns."
        )
    if len(header) == 1 and sep == "," and ";" in header_line:
        raise DataError(
            f"'{name}' looks separated by ';' rather than ','. Save it as comma-separated CSV."
        )
    return header


def _parse_delimited(
    data: bytes, text: str, name: str, sep: str, text_columns: list[str | None]
) -> pa.Table:
    """``data`` (UTF-8 without a byte-order mark; ``text`` is it decoded) → Arrow table;
    a row with more or fewer fields than the header is refused, naming its line. The
    ``text_columns`` (the label, chosen ID columns) are text as written; an empty cell is
    the only missing value."""
    bad_rows: list[tuple[int | None, int, int]] = []

    def on_bad_row(row) -> str:
        bad_rows.append((row.number, row.expected_columns, row.actual_columns))
        return "skip"

    label_types = {c: pa.string() for c in text_columns if c is not None}
    try:
        table = pa_csv.read_csv(
            io.BytesIO(data),
            read_options=pa_csv.ReadOptions(
                use_threads=False, block_size=max(len(data) + 1, 1 << 20)
            ),
            parse_options=pa_csv.ParseOptions(delimiter=sep, invalid_row_handler=on_bad_row),
            convert_options=pa_csv.ConvertOptions(
                column_types=label_types, null_values=[""], strings_can_be_null=True
            ),
        )
    except pa.ArrowInvalid as exc:
        raise DataError(f"'{name}' cannot be read as {_kind(sep)}: {exc}") from None
    if bad_rows:
        line, expected, actual = bad_rows[0]
        if line is None:
            line = _first_ragged_line(text, sep, expected)
        more = f" ({len(bad_rows)} such rows)" if len(bad_rows) > 1 else ""
        raise DataError(
            f"'{name}' line {line} has {actual} fields; the header has {expected}{more}. "
            "Every row needs one value per column."
        )
    return table


def _kind(sep: str) -> str:
    return "CSV" if sep == "," else "TSV"


def _first_ragged_line(text: str, sep: str, expected: int) -> int | str:
    lines = io.StringIO(text, newline="")  # csv splits lines: LF, CRLF or CR, quotes kept
    for line_number, row in enumerate(csv.reader(lines, delimiter=sep), start=1):
        if row and len(row) != expected:
            return line_number
    return "?"


# --- Parquet --------------------------------------------------------------------------------


def read_parquet(
    path: Path,
    limits: Limits,
    *,
    label_column: str,
    image_size: tuple[int, int] | None,
    require_labels: bool,
    id_columns: list[str] | None = None,
    **_other_options: object,
) -> RawData:
    """Parse a Parquet file (plain columns, a ``features`` list column or hub images)."""
    name = path.name
    try:
        parquet = pq.ParquetFile(path)
        meta = parquet.metadata
        schema = parquet.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(f"'{name}' is not a valid Parquet file ({exc}).") from None
    if meta.num_rows > limits.max_rows:
        raise DataError(
            f"'{name}' has {meta.num_rows:,} rows; the limit is {limits.max_rows:,} rows."
        )
    if len(schema) > limits.max_columns:
        raise DataError(
            f"'{name}' has {len(schema):,} columns; the limit is {limits.max_columns:,} columns."
        )
    unpacked = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if unpacked > limits.max_uncompressed_bytes:
        raise DataError(
            f"'{name}' would unpack to {mib(unpacked)}; the limit is "
            f"{mib(limits.max_uncompressed_bytes)}."
        )
    try:
        table = parquet.read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(f"'{name}' is not a valid Parquet file ({exc}).") from None
    return table_to_raw(
        table,
        name,
        limits,
        label_column=label_column,
        image_size=image_size,
        require_labels=require_labels,
        stored_names=_hub_label_names(schema),
        id_columns=id_columns,
    )


def _hub_label_names(schema: pa.Schema) -> dict[str, list[str]]:
    """ClassLabel names per column from the Hugging Face metadata a hub Parquet carries."""
    raw = (schema.metadata or {}).get(b"huggingface")
    if not raw:
        return {}
    try:
        features = json.loads(raw)["info"]["features"]
    except (ValueError, KeyError, TypeError):
        return {}
    found = {}
    if isinstance(features, dict):
        for column, feature in features.items():
            if isinstance(feature, dict) and isinstance(feature.get("names"), list):
                found[column] = [str(n) for n in feature["names"]]
    return found


# --- table → arrays -------------------------------------------------------------------------


def table_to_raw(
    table: pa.Table,
    name: str,
    limits: Limits,
    *,
    label_column: str,
    image_size: tuple[int, int] | None,
    require_labels: bool,
    stored_names: dict[str, list[str]] | None = None,
    id_columns: list[str] | None = None,
) -> RawData:
    """Split an Arrow table into features, labels and ID columns, checking them. Without
    ``require_labels`` a table with no label column gives ``labels=None`` (a new lot).
    ``stored_names``: class names per column, from the file's metadata. ``id_columns``:
    the columns that identify a part rather than describe it (None: every column of text
    none of whose values reads as a number, see `_looks_like_ids`)."""
    table = _drop_trailing_empty_column(table)
    columns = table.column_names
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise DataError(
            f"'{name}' has more than one column named {duplicates[0]!r}; column names must "
            "be unique."
        )
    if table.num_rows == 0:
        raise DataError(f"'{name}' has a header but no data rows. Expected one row per sample.")
    label_name = _find_label_column(columns, label_column, name, require_labels)
    labels = None if label_name is None else _labels(table.column(label_name), label_name, name)
    names = (stored_names or {}).get(label_name)
    rest = [c for c in columns if c != label_name and not _is_index(table, c)]
    ids = _id_columns(table, rest, id_columns, label_name, name)
    rest = [c for c in rest if c not in ids]

    if "image" in rest and not _is_numeric(table.schema.field("image").type):
        images, notes, files = _decode_image_column(table.column("image"), name, image_size, limits)
        if files is not None and "file" not in ids:
            ids["file"] = files
        return RawData(
            images,
            labels,
            label_names=names,
            image_shape=images.shape[1:],
            columns=["image"],
            notes=notes,
            ids=ids,
        )
    if "features" in rest:
        features = _list_column(table.column("features"), name)
        return RawData(features, labels, label_names=names, columns=["features"], ids=ids)
    if not rest:
        raise DataError(
            f"'{name}' has no feature columns besides {label_name!r}"
            + (f" and the ID columns {columns_text(list(ids))}" if ids else "")
            + ". Expected numeric feature columns (or px_<row>_<col> pixel columns, or a "
            "'features' column of lists)."
        )
    features = np.empty((table.num_rows, len(rest)), dtype=np.float64)
    for j, column in enumerate(rest):
        features[:, j] = _numeric_column(table.column(column), column, name)
    order, shape = _pixel_layout(rest)
    if order is not None:
        features = features[:, order]
        rest = [rest[i] for i in order]
    return RawData(features, labels, label_names=names, image_shape=shape, columns=rest, ids=ids)


def _drop_trailing_empty_column(table: pa.Table) -> pa.Table:
    """Without the last column when it has no name and no values: what a delimiter at
    the end of every line (header included) leaves."""
    if table.num_columns < 2:
        return table
    last = table.column_names[-1]
    column = table.column(table.num_columns - 1)
    if last.strip() == "" and column.null_count == len(column):
        return table.remove_column(table.num_columns - 1)
    return table


def _looks_like_ids(column: pa.ChunkedArray) -> bool:
    """A column of text none of whose values reads as a number (part numbers, lots, file
    names). A mostly numeric column with a stray word is a broken feature column, which
    `_numeric_column` names, not an ID column."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return False
    values = [v for v in column.to_pylist() if v is not None and v.strip() not in _MISSING_TEXT]
    if not values:
        return False
    for value in values:
        try:
            float(value)
        except ValueError:
            continue
        return False
    return True


def _id_columns(
    table: pa.Table,
    candidates: list[str],
    chosen: list[str] | None,
    label_name: str | None,
    name: str,
) -> dict[str, np.ndarray]:
    """The ID columns among ``candidates`` as (N,) text arrays (a missing cell is ``""``):
    the ``chosen`` ones, or those that `_looks_like_ids` when none are chosen."""
    if chosen is None:
        picked = [
            c
            for c in candidates
            if c not in ("image", "features") and _looks_like_ids(table.column(c))
        ]
    else:
        unknown = [c for c in chosen if c not in table.column_names]
        if unknown:
            raise DataError(
                f"'{name}' has no column {unknown[0]!r} to use as an ID column; columns "
                f"found: {columns_text(table.column_names)}."
            )
        if label_name is not None and label_name in chosen:
            raise DataError(
                f"{label_name!r} in '{name}' is the label column; it cannot be an ID column too."
            )
        picked = [c for c in candidates if c in chosen]
    ids = {}
    for column in picked:
        values = table.column(column)
        if pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        ids[column] = np.array(
            ["" if v is None else str(v) for v in values.to_pylist()], dtype=object
        )
    return ids


def _find_label_column(
    columns: list[str], label_column: str, name: str, required: bool = True
) -> str | None:
    if label_column in columns:
        return label_column
    folded = [c for c in columns if c.lower() == label_column.lower()]
    if len(folded) == 1:
        return folded[0]
    if not required:
        return None
    raise DataError(
        f"'{name}' has no {label_column!r} column; columns found: {columns_text(columns)}. "
        f"Expected a {label_column!r} column holding each row's class."
    )


def _is_index(table: pa.Table, column: str) -> bool:
    """A leftover pandas index column (0, 1, 2, …) — not a feature."""
    if column not in _INDEX_COLUMNS:
        return False
    values = table.column(column)
    if not pa.types.is_integer(values.type) or values.null_count:
        return False
    return bool(np.array_equal(values.to_numpy(), np.arange(table.num_rows)))


def _labels(column: pa.ChunkedArray, label_name: str, name: str) -> np.ndarray:
    """The label column (N,) as written: integers in their own width (uint64 stays
    unsigned), floats as floats (``load_dataset`` decides which are whole), text and
    booleans as text. A null (an empty cell) is a missing label."""
    if column.null_count:
        missing = np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))
        raise DataError(
            f"'{name}': rows {rows_text(missing)} have no {label_name!r}; every row needs a class."
        )
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return column.to_numpy()
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_boolean(kind):
        return np.array([str(v).strip() for v in column.to_pylist()], dtype=object)
    raise DataError(
        f"'{name}': {label_name!r} has type {kind}; labels must be class names or integers."
    )


def _is_numeric(kind: pa.DataType) -> bool:
    """A column type that feature values come from as they are."""
    return (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_null(kind)
    )


def _numeric_column(column: pa.ChunkedArray, column_name: str, name: str) -> np.ndarray:
    """One feature column as float64 (N,); missing values become NaN (caught later)."""
    kind = column.type
    if pa.types.is_null(kind):
        return np.full(len(column), np.nan)
    if _is_numeric(kind):
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        # text that still reads as numbers ("1e400", "Infinity") is numeric; anything else is not
        values = column.to_pylist()
        out = np.empty(len(values), dtype=np.float64)
        for row, value in enumerate(values):
            if value is None or value.strip() in _MISSING_TEXT:
                out[row] = np.nan
                continue
            try:
                out[row] = float(value)
            except ValueError:
                raise DataError(
                    f"Column {column_name!r} holds text ({value!r} in row {row + 1}); "
                    "feature columns must be numeric."
                ) from None
        return out
    raise DataError(
        f"Column {column_name!r} in '{name}' has type {kind}; feature columns must be numeric."
    )


def _pixel_layout(columns: list[str]) -> tuple[np.ndarray | None, tuple[int, int] | None]:
    """Row-major order and (rows, cols) when every column is px_<r>_<c> over a full grid."""
    cells = []
    for column in columns:
        match = PIXEL_COLUMN.match(column)
        if not match:
            return None, None
        cells.append((int(match.group(1)), int(match.group(2))))
    rows = max(r for r, _ in cells) + 1
    cols = max(c for _, c in cells) + 1
    if rows * cols != len(cells) or len(set(cells)) != len(cells):
        return None, None
    flat = np.array([r * cols + c for r, c in cells])
    return np.argsort(flat, kind="stable"), (rows, cols)


def _list_column(column: pa.ChunkedArray, name: str) -> np.ndarray:
    """A 'features' column of lists (Arrow lists, or text like "[0.1, 0.2]") → (N, d)."""
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _list_text_column(column.to_pylist(), name)
    if not (
        pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    ):
        raise DataError(
            f"Column 'features' in '{name}' has type {kind}; expected a list of numbers per row."
        )
    array = column.combine_chunks()
    if array.null_count:
        missing = np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))
        raise DataError(f"'{name}': rows {rows_text(missing)} have no 'features'.")
    lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)
    _check_lengths(lengths, name)
    values = array.flatten()
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        raise DataError(
            f"Column 'features' in '{name}' holds {values.type} values; features must be numeric."
        )
    flat = values.cast(pa.float64()).to_numpy(zero_copy_only=False)
    return flat.reshape(len(lengths), int(lengths[0]))


def _check_lengths(lengths: np.ndarray, name: str) -> None:
    if lengths[0] == 0:
        raise DataError(f"'{name}': row 1 of 'features' is an empty list.")
    uneven = np.flatnonzero(lengths != lengths[0])
    if len(uneven):
        row = int(uneven[0])
        raise DataError(
            f"'{name}': row {row + 1} of 'features' has {lengths[row]} values; row 1 has "
            f"{lengths[0]}. Every row needs the same number of features."
        )


def _list_text_column(texts: list[str | None], name: str) -> np.ndarray:
    inner = []
    for row, text in enumerate(texts):
        if text is None:
            raise DataError(f"'{name}': row {row + 1} has no 'features'.")
        text = text.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        inner.append(text)
    lengths = np.array([t.count(",") + 1 if t.strip() else 0 for t in inner])
    _check_lengths(lengths, name)
    try:
        flat = np.fromstring(",".join(inner), sep=",")
    except ValueError:  # text that is not a number somewhere: find the row below
        flat = np.empty(0)
    if flat.size != lengths.sum():
        for row, text in enumerate(inner):
            try:
                [float(v) for v in text.split(",")]
            except ValueError:
                raise DataError(
                    f"'{name}': row {row + 1} of 'features' is not a list of numbers "
                    f'({texts[row]!r}); expected text like "[0.1, 0.2, 0.3]".'
                ) from None
        raise DataError(f"'{name}': the 'features' column cannot be read as lists of numbers.")
    return flat.reshape(len(inner), int(lengths[0]))


def _decode_image_column(
    column: pa.ChunkedArray, name: str, image_size: tuple[int, int] | None, limits: Limits
) -> tuple[np.ndarray, dict[str, object], np.ndarray | None]:
    """The hub's image column ({bytes, path} per row) → (N, H, W) float32, resized to
    ``image_size`` (None: the images' most common size), notes on the sizes, and the
    image paths when the file has them. Every header is read before any image is decoded,
    to keep the file within ``limits.max_total_pixels``."""
    kind = column.type
    if not pa.types.is_struct(kind):
        text = (
            " Text (base64, say) is not decoded: store each image file's bytes."
            if pa.types.is_string(kind) or pa.types.is_large_string(kind)
            else ""
        )
        raise DataError(
            f"Column 'image' in '{name}' has type {kind}; expected the Hugging Face image "
            f"layout {_HUB_IMAGE}.{text}"
        )
    field_names = [kind.field(i).name for i in range(kind.num_fields)]
    if "bytes" not in field_names:
        raise DataError(
            f"Column 'image' in '{name}' has fields {field_names}; expected the Hugging Face "
            f"layout {_HUB_IMAGE}."
        )
    bytes_type = kind.field("bytes").type
    if not (pa.types.is_binary(bytes_type) or pa.types.is_large_binary(bytes_type)):
        raise DataError(
            f"Column 'image' in '{name}' holds {bytes_type} in its 'bytes' field; expected "
            f"each image file's bytes (binary), as in {_HUB_IMAGE}. Text such as base64 is "
            "not decoded."
        )
    fields = dict(zip(field_names, column.combine_chunks().flatten(), strict=True))
    blobs = fields["bytes"].to_pylist()  # a null row is None here: flatten keeps row nulls
    paths = fields["path"].to_pylist() if "path" in fields else [None] * len(blobs)
    members = [
        f"{name} row {row + 1}" + (f" ({image_path})" if image_path else "")
        for row, image_path in enumerate(paths)
    ]
    for member, blob in zip(members, blobs, strict=True):
        if blob is None:
            raise DataError(
                f"Image '{member}' has no embedded bytes; the images must be stored in the file."
            )
    sizes = [declared_size(io.BytesIO(blob)) for blob in blobs]
    image_size, notes = choose_image_size(sizes, image_size)
    check_total_pixels(sum(h * w for h, w in sizes), len(blobs), name, image_size, limits)
    images = np.empty((len(blobs), *image_size), dtype=np.float32)
    for row, (member, blob) in enumerate(zip(members, blobs, strict=True)):
        images[row] = decode_image(blob, member, image_size, limits)
    files = None
    if any(paths):
        files = np.array(["" if p is None else str(p) for p in paths], dtype=object)
    return images, notes, files
