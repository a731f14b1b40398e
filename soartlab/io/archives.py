"""Zip archives without trusting them, and the reader for a zip of class folders.

Entry names are read as the tool that made the zip wrote them: UTF-8 when the entry says
so (flag bit 0x800), else cp932 when the bytes are valid cp932 — what Windows' "Send to →
Compressed folder" writes on a Japanese PC — else cp437, the zip format's default (see
``entry_name``). Every entry is checked before anything is decompressed: its name (no
``..``, absolute paths, backslashes or symbolic links), the number of entries, their declared sizes and
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
    choose_image_size,
    declared_size,
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


_UTF8_NAME_FLAG = 0x800


def entry_name(info: zipfile.ZipInfo) -> str:
    """The name of a zip entry as its maker wrote it. ``zipfile`` decodes names without
    the UTF-8 flag as cp437; Japanese Windows writes them in cp932, so such a name is
    taken back to its bytes and read as cp932 when that is valid (else kept as cp437)."""
    if info.flag_bits & _UTF8_NAME_FLAG:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("cp932")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    name = entry_name(info)  # a cp932 trail byte can be 0x5c, a backslash in cp437
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
                f"'{archive}' contains an unsafe entry '{entry_name(info)}' ({reason}). "
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


def _member_size(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[int, int]:
    """(height, width) declared by the image header of one entry, read without decoding
    the image (only the first compressed block is inflated); (0, 0) when the entry cannot
    be opened (``read_member`` then says why)."""
    try:
        with zf.open(info) as stream:
            return declared_size(stream)
    except FOREIGN_ERRORS:
        return 0, 0


def _is_junk(parts: tuple[str, ...]) -> bool:
    return (
        parts[0] == "__MACOSX"
        or any(part.startswith(".") for part in parts)
        or parts[-1].lower() in _JUNK_NAMES
    )


def read_image_zip(
    path: Path,
    limits: Limits,
    *,
    image_size: tuple[int, int] | None,
    require_labels: bool = True,
    **_other_options: object,
) -> RawData:
    """A zip of class folders → images (N, H, W) float32 in [0, 1], resized to
    ``image_size`` (None: the most common size among the images), labelled with their
    folder names (N,); ``ids["file"]`` is each image's path in the zip. Without
    ``require_labels`` a zip of images with no class folders (a flat zip, or a single
    folder) is an unlabelled lot (``labels=None``). Every image header is read before any
    image is decoded, to keep the upload within ``limits.max_total_pixels``."""
    archive = path.name
    with open_zip(path) as zf:
        files = check_members(zf, archive, limits)
        entries = [
            (info, PurePosixPath(entry_name(info)).parts)
            for info in files
            if not _is_junk(PurePosixPath(entry_name(info)).parts)
        ]
        if not entries:
            raise DataError(f"'{archive}' holds no images. {_LAYOUT_HELP}")
        # a zipped folder adds one common top-level folder above the class folders
        while all(len(parts) > 2 for _, parts in entries) and (
            len({parts[0] for _, parts in entries}) == 1
        ):
            entries = [(info, parts[1:]) for info, parts in entries]
        loose = [entry_name(info) for info, parts in entries if len(parts) < 2]
        one_folder = len({parts[0] for _, parts in entries}) == 1
        labelled = not loose and (require_labels or not one_folder)
        if loose and (require_labels or len(loose) < len(entries)):
            raise DataError(
                f"'{archive}' has no class folders ('{loose[0]}' is not inside a folder). "
                f"{_LAYOUT_HELP}"
                + ("" if require_labels else " A new lot may also be a zip of images alone.")
            )
        if len(entries) > limits.max_rows:
            raise DataError(
                f"'{archive}' holds {len(entries):,} images; the limit is {limits.max_rows:,}."
            )
        for info, _ in entries:
            if PurePosixPath(entry_name(info)).suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(
                    f"'{archive}' entry '{entry_name(info)}' is not an image file. {_LAYOUT_HELP}"
                )
        sizes = [_member_size(zf, info) for info, _ in entries]
        image_size, notes = choose_image_size(sizes, image_size)
        check_total_pixels(sum(h * w for h, w in sizes), len(entries), archive, image_size, limits)
        images = np.empty((len(entries), *image_size), dtype=np.float32)
        labels, files_in_zip = [], []
        for row, (info, parts) in enumerate(entries):
            data = read_member(zf, info, archive)
            images[row] = decode_image(data, f"{archive}/{entry_name(info)}", image_size, limits)
            labels.append(parts[0])
            files_in_zip.append(entry_name(info))
    return RawData(
        images,
        np.array(labels, dtype=object) if labelled else None,
        image_shape=tuple(image_size),
        notes=notes,
        ids={"file": np.array(files_in_zip, dtype=object)},
    )
