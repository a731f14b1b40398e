"""Caps on what a user file may hold, checked before the bulk of the work is done."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from soartlab.errors import DataError
from soartlab.io.messages import mib


@dataclass(frozen=True)
class Limits:
    """Caps on what a user file may hold; each is checked before the bulk of the work."""

    max_file_bytes: int = 200 * 1024**2  # size of the uploaded file itself
    max_rows: int = 200_000  # samples (table rows, images in a zip)
    max_columns: int = 20_000  # table columns / features per sample
    max_zip_members: int = 20_000  # entries in a .zip or .npz
    max_uncompressed_bytes: int = 1024**3  # declared unpacked size of a zip / npz / parquet
    max_compression_ratio: float = 100.0  # per zip entry (entries of 1 MiB and more)
    max_image_pixels: int = 4096 * 4096  # width × height declared by one image header
    # width × height summed over every image of an upload (200,000 images of 64×64 pass)
    max_total_pixels: int = 1_000_000_000


def check_file_size(path: Path, limits: Limits) -> None:
    """Refuse a file over ``limits.max_file_bytes`` before a byte of it is read."""
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise DataError(
            f"'{path.name}' is {mib(size)}; the limit is {mib(limits.max_file_bytes)}. "
            "It was not read."
        )


# No cap: what the command line reads is what its user points it at.
UNCAPPED = 2**62


def command_line_limits(max_rows: int | None = None, max_file_bytes: int | None = None) -> Limits:
    """The limits of the command line and torchrun: no cap on rows, file size, unpacked
    size or pixels in all unless one is given (``--max-rows``, ``--max-file-mb``). The
    checks that protect a reader from a hostile file stay: the compression ratio of a
    zip entry, the pixels one image header may declare, the columns of a table."""
    return Limits(
        max_file_bytes=UNCAPPED if max_file_bytes is None else int(max_file_bytes),
        max_rows=UNCAPPED if max_rows is None else int(max_rows),
        max_zip_members=UNCAPPED,
        max_uncompressed_bytes=UNCAPPED,
        max_total_pixels=UNCAPPED,
    )
