"""Reading user data files without trusting them.

One concept per module: ``limits`` (the caps on a file), ``messages`` (how errors name
rows and sizes; which library errors mean a bad file), ``raw`` (``RawData``, what every reader returns, and the checks every
file's samples get), ``images`` (decoding one image), ``archives`` (zip safety and a zip
of class folders), ``npz`` and ``tables`` (CSV/TSV/Parquet), and ``registry`` (the reader
for each file suffix, and ``reading``, which turns what a library raises on a bad file into
a ``DataError``). Nothing here imports ``soartlab.data``, which builds datasets from
``RawData``.
"""

from soartlab.io.limits import Limits, check_file_size, command_line_limits
from soartlab.io.raw import RawData, checked_samples, finite_float32
from soartlab.io.registry import (
    READERS,
    SUPPORTED_SUFFIXES,
    Outline,
    Reader,
    outline,
    reader_for,
    reading,
)

__all__ = [
    "READERS",
    "SUPPORTED_SUFFIXES",
    "Limits",
    "Outline",
    "RawData",
    "Reader",
    "check_file_size",
    "checked_samples",
    "command_line_limits",
    "finite_float32",
    "outline",
    "reader_for",
    "reading",
]
