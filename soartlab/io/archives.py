"""Zip archives without trusting them, and the reader for a zip of class folders.

Every entry is checked before anything is decompressed: its name (no ``..``, absolute
paths, backslashes or symbolic links), the number of entries, their declared sizes and
compression ratios. ``zipfile`` never hands out more bytes than an entry declares, so the
declared sizes are a real bound. Nothing is ever extracted to disk.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from soartlab.errors import DataError
from soartlab.io.images import (
    IMAGE_SUFFIXES,
    check_total_pixels,
    declared_pixels,
    decode_image,
)
from soartlab.io.limits import Limits
from soartlab.io.messages import FOREIGN_ERRORS, mib
from soartlab.io.raw import RawData

_JUNK_NAMES = {"thumbs.db", "desktop.ini", ".ds_store"}
_RATIO_CHECK_BYTES = 1 << 20  # small entries may compress very well without being a bomb
_LAYOUT_HELP = (
    "Expected a zip with one folder per class and the images inside, e.g. "
    "good/0001.png, good/0002.png, scratch/0003.png "
    f"(images: {', '.join(IMAGE_SUFFIXES)})."
)


def open_zip(path: Path, kind: str = "zip") -> zipfile.ZipFile:
    """Open ``path`` as a zip archive; DataError "not a valid zip" if it is not one."""
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise DataError(
            f"'{path.name}' is not a valid {kind} file ({exc}). "
            "Upload an unencrypted .zip archive made with a standard zip tool."
        ) from None


def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if "\\" in name:
        return "a backslash in the path"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "a path that climbs out of the archive with '..'"
    if (info.external_attr >> 16) & 0o170000 == 0o120000:
        return "a symbolic link"
    return None


def check_members(zf: zipfile.ZipFile, archive: str, limits: Limits) -> list[zipfile.ZipInfo]:
    """Validate every entry of an open archive before anything is decompressed.

    Returns the file entries (directories dropped). Raises DataError for unsafe names,
    symbolic links, encryption, too many entries, or declared sizes / compression ratios
    over ``limits`` — a zip bomb is refused from its directory alone.
    """
    infos = zf.infolist()
    if len(infos) > limits.max_zip_members:
        raise DataError(
            f"'{archive}' has {len(infos):,} entries; the limit is {limits.max_zip_members:,}. "
            "Split the data into smaller archives."
        )
    for info in infos:
        reason = _unsafe_reason(info)
        if reason:
            raise DataError(
                f"'{archive}' contains an unsafe entry '{info.filename}' ({reason}). "
                "Archive entries must be plain relative paths; nothing was extracted."
            )
        if info.flag_bits & 0x1:
            raise DataError(
                f"'{archive}' is not a valid zip for SOART Lab: entry '{info.filename}' is "
                "encrypted (password-protected). Upload an archive without a password."
            )
    files = [info for info in infos if not info.is_dir()]
    total = sum(info.file_size for info in files)
    if total > limits.max_uncompressed_bytes:
        raise DataError(
            f"'{archive}' would unpack to {mib(total)}; the limit is "
            f"{mib(limits.max_uncompressed_bytes)}. Nothing was decompressed."
        )
    for info in files:
        if info.file_size < _RATIO_CHECK_BYTES:
            continue
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > limits.max_compression_ratio:
            raise DataError(
                f"'{archive}' entry '{info.filename}' has a compression ratio of {ratio:,.0f}:1 "
                f"({mib(info.file_size)} from {info.compress_size:,} bytes); the limit is "
                f"{limits.max_compression_ratio:g}:1. This looks like a zip bomb; nothing "
                "was decompressed."
            )
    return files


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, archive: str) -> bytes:
    """The bytes of one (already checked) entry; a corrupt entry → "not a valid zip"."""
    try:
        return zf.read(info)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, ValueError) as exc:
        raise DataError(
            f"'{archive}' is not a valid zip: entry '{info.filename}' cannot be read ({exc})."
        ) from None


def _member_pixels(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> int:
    """width × height declared by the image header of one entry, read without decoding
    the image (only the first compressed block is inflated); 0 when the entry cannot be
    opened (``read_member`` then says why)."""
    try:
        with zf.open(info) as stream:
            return declared_pixels(stream)
    except FOREIGN_ERRORS:
        return 0


def _is_junk(parts: tuple[str, ...]) -> bool:
    return (
        parts[0] == "__MACOSX"
        or any(part.startswith(".") for part in parts)
        or parts[-1].lower() in _JUNK_NAMES
    )


def read_image_zip(
    path: Path, limits: Limits, *, image_size: tuple[int, int], **_other_options: object
) -> RawData:
    """A zip of class folders → images (N, H, W) float32 in [0, 1], resized to
    ``image_size``, labelled with their folder names (N,). Every image header is read
    before any image is decoded, to keep the upload within ``limits.max_total_pixels``."""
    archive = path.name
    with open_zip(path) as zf:
        files = check_members(zf, archive, limits)
        entries = [
            (info, PurePosixPath(info.filename).parts)
            for info in files
            if not _is_junk(PurePosixPath(info.filename).parts)
        ]
        if not entries:
            raise DataError(f"'{archive}' holds no images. {_LAYOUT_HELP}")
        # a zipped folder adds one common top-level folder above the class folders
        while all(len(parts) > 2 for _, parts in entries) and (
            len({parts[0] for _, parts in entries}) == 1
        ):
            entries = [(info, parts[1:]) for info, parts in entries]
        loose = [info.filename for info, parts in entries if len(parts) < 2]
        if loose:
            raise DataError(
                f"'{archive}' has no class folders ('{loose[0]}' is not inside a folder). "
                f"{_LAYOUT_HELP}"
            )
        if len(entries) > limits.max_rows:
            raise DataError(
                f"'{archive}' holds {len(entries):,} images; the limit is {limits.max_rows:,}."
            )
        for info, _ in entries:
            if PurePosixPath(info.filename).suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(
                    f"'{archive}' entry '{info.filename}' is not an image file. {_LAYOUT_HELP}"
                )
        total = sum(_member_pixels(zf, info) for info, _ in entries)
        check_total_pixels(total, len(entries), archive, image_size, limits)
        images = np.empty((len(entries), *image_size), dtype=np.float32)
        labels = []
        for row, (info, parts) in enumerate(entries):
            data = read_member(zf, info, archive)
            images[row] = decode_image(data, f"{archive}/{info.filename}", image_size, limits)
            labels.append(parts[0])
    return RawData(images, np.array(labels, dtype=object), image_shape=tuple(image_size))
