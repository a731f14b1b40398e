"""Reading zip archives (folders of images, ``.npz`` arrays) and images without trusting them.

Everything here is checked before it is decompressed or decoded: entry names (no ``..``,
absolute paths, backslashes or symbolic links), the number of entries, their declared
sizes and compression ratios, and each image's declared width × height. ``zipfile`` never
hands out more bytes than an entry declares, so the declared sizes are a real bound.
Nothing is ever extracted to disk.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from soartlab.errors import DataError

if TYPE_CHECKING:
    from soartlab.data import Limits

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
"""Image files accepted inside a zip of class folders."""

_JUNK_NAMES = {"thumbs.db", "desktop.ini", ".ds_store"}
_RATIO_CHECK_BYTES = 1 << 20  # small entries may compress very well without being a bomb
_LAYOUT_HELP = (
    "Expected a zip with one folder per class and the images inside, e.g. "
    "good/0001.png, good/0002.png, scratch/0003.png "
    f"(images: {', '.join(IMAGE_SUFFIXES)})."
)


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:,.1f} MiB"


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
            f"'{archive}' would unpack to {_mib(total)}; the limit is "
            f"{_mib(limits.max_uncompressed_bytes)}. Nothing was decompressed."
        )
    for info in files:
        if info.file_size < _RATIO_CHECK_BYTES:
            continue
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > limits.max_compression_ratio:
            raise DataError(
                f"'{archive}' entry '{info.filename}' has a compression ratio of {ratio:,.0f}:1 "
                f"({_mib(info.file_size)} from {info.compress_size:,} bytes); the limit is "
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


def decode_image(
    data: bytes, member: str, image_size: tuple[int, int], limits: Limits
) -> np.ndarray:
    """Decode one image to grayscale float32 (H, W) in [0, 1], resized to ``image_size``.

    The header is read first and its width × height checked against
    ``limits.max_image_pixels`` before any pixel is decoded. ``member`` names the image in
    messages (an archive entry or a table row).
    """
    height, width = image_size
    try:
        with Image.open(io.BytesIO(data)) as image:
            w, h = image.size
            if w * h > limits.max_image_pixels:
                raise DataError(_too_many_pixels(member, w * h, limits, f"{w:,}×{h:,}"))
            image.load()
            if image.mode.startswith("I;16"):
                pixels = np.asarray(image, dtype=np.float32) / 65535.0
                gray = Image.fromarray(pixels)  # mode "F"
                scale = 1.0
            else:
                gray = image.convert("L")
                scale = 255.0
            if gray.size != (width, height):
                gray = gray.resize((width, height), Image.Resampling.BILINEAR)
            return np.asarray(gray, dtype=np.float32) / np.float32(scale)
    except Image.DecompressionBombError as exc:
        declared = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(declared.group(1)) if declared else None
        raise DataError(_too_many_pixels(member, pixels, limits)) from None
    except UnidentifiedImageError:
        raise DataError(
            f"'{member}' is not an image that can be read; expected PNG, JPEG or BMP."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DataError(f"Image '{member}' is truncated or corrupt ({exc}).") from None


def _too_many_pixels(member: str, pixels: int | None, limits: Limits, size: str = "") -> str:
    if size:
        declared = f"declares {size} = {pixels:,} pixels"
    elif pixels is not None:
        declared = f"declares {pixels:,} pixels"
    else:
        declared = "declares too many pixels"
    return (
        f"Image '{member}' {declared}; the limit is {limits.max_image_pixels:,} pixels. "
        "It was not decoded."
    )


def _is_junk(parts: tuple[str, ...]) -> bool:
    return (
        parts[0] == "__MACOSX"
        or any(part.startswith(".") for part in parts)
        or parts[-1].lower() in _JUNK_NAMES
    )


def read_image_zip(
    path: Path, image_size: tuple[int, int], limits: Limits
) -> tuple[np.ndarray, np.ndarray]:
    """A zip of class folders → images (N, H, W) float32 in [0, 1] and folder names (N,)."""
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
        images = np.empty((len(entries), *image_size), dtype=np.float32)
        labels = []
        for row, (info, parts) in enumerate(entries):
            if PurePosixPath(info.filename).suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(
                    f"'{archive}' entry '{info.filename}' is not an image file. {_LAYOUT_HELP}"
                )
            data = read_member(zf, info, archive)
            images[row] = decode_image(data, f"{archive}/{info.filename}", image_size, limits)
            labels.append(parts[0])
    return images, np.array(labels, dtype=object)


def _check_npy_header(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, archive: str, limits: Limits
) -> None:
    """Refuse an array before loading it: object dtype, or a header declaring more data
    than the entry holds (NumPy would allocate the declared size first)."""
    if not info.filename.endswith(".npy"):
        return
    key = info.filename[: -len(".npy")]
    try:
        with zf.open(info) as fp:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, SyntaxError) as exc:
        raise DataError(f"'{archive}' is not a valid .npz file: array '{key}' ({exc}).") from None
    if dtype.hasobject:
        raise DataError(
            f"'{archive}' holds '{key}' as an object array, which would need unpickling; "
            "refused. Save plain numeric / string arrays (np.savez with allow_pickle=False)."
        )
    declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if declared > info.file_size:
        raise DataError(
            f"'{archive}' is not a valid .npz file: array '{key}' declares shape {shape} "
            f"({_mib(declared)}) but holds only {_mib(info.file_size)}."
        )
    if key == "X" and len(shape) >= 1 and shape[0] > limits.max_rows:
        raise DataError(f"'{archive}': X has {shape[0]:,} rows; the limit is {limits.max_rows:,}.")


def read_npz(path: Path, limits: Limits) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """An ``.npz`` with ``X`` ((N, d) or (N, H, W)), ``y`` (N,) and optional ``label_names``.

    The archive is checked like any zip first; arrays load with ``allow_pickle=False``.
    Returns (X as float64 or float32, raw labels, label names or None).
    """
    archive = path.name
    with open_zip(path, kind=".npz (zip)") as zf:
        for info in check_members(zf, archive, limits):
            _check_npy_header(zf, info, archive, limits)
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"'{archive}' is not a valid .npz file ({exc}).") from None
    with npz:
        keys = list(npz.files)
        missing = [key for key in ("X", "y") if key not in keys]
        if missing:
            raise DataError(
                f"'{archive}' has no array {' or '.join(repr(k) for k in missing)}; arrays "
                f"found: {', '.join(keys) or 'none'}. Expected X (N×d or N×H×W) and y (N labels)."
            )
        arrays = {}
        for key in ("X", "y", "label_names"):
            if key not in keys:
                continue
            try:
                arrays[key] = npz[key]
            except ValueError as exc:
                if "allow_pickle" in str(exc) or "object" in str(exc).lower():
                    raise DataError(
                        f"'{archive}' holds '{key}' as an object array, which would need "
                        "unpickling; refused. Save plain numeric / string arrays "
                        "(np.savez with allow_pickle=False)."
                    ) from None
                raise DataError(f"'{archive}' is not a valid .npz file ({exc}).") from None
            except (OSError, EOFError, zipfile.BadZipFile) as exc:
                raise DataError(f"'{archive}' is not a valid .npz file ({exc}).") from None
    features, labels = arrays["X"], arrays["y"]
    if features.dtype.kind not in "biuf" or features.ndim not in (2, 3):
        raise DataError(
            f"'{archive}': X must be a numeric array of shape (N, d) or (N, H, W); got "
            f"dtype {features.dtype} with shape {features.shape}."
        )
    if labels.ndim != 1 or len(labels) != len(features):
        raise DataError(
            f"'{archive}': y must be 1-D with one label per row of X; got shape {labels.shape} "
            f"for X of shape {features.shape}."
        )
    names = None
    if "label_names" in arrays:
        raw_names = arrays["label_names"]
        if raw_names.ndim != 1 or raw_names.dtype.kind not in "USiu":
            raise DataError(
                f"'{archive}': label_names must be a 1-D array of strings; got dtype "
                f"{raw_names.dtype} with shape {raw_names.shape}."
            )
        names = [str(name) for name in raw_names.tolist()]
    if labels.dtype.kind not in "biufUS":
        raise DataError(f"'{archive}': y must hold integers or strings; got dtype {labels.dtype}.")
    if labels.dtype.kind == "S":
        labels = labels.astype(str)
    return features, labels, names
