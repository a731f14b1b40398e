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

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from soartlab.errors import DataError, SoartLabError
from soartlab.io.archives import read_image_zip
from soartlab.io.excel import read_xls, read_xlsx
from soartlab.io.messages import FOREIGN_ERRORS, foreign_error_text
from soartlab.io.npz import read_npz
from soartlab.io.raw import RawData
from soartlab.io.tables import read_delimited, read_parquet

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
