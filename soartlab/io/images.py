"""Decoding images without trusting them: each header's width × height is checked against
``Limits.max_image_pixels``, and the sum over an upload against ``Limits.max_total_pixels``,
before any pixel is decoded."""

from __future__ import annotations

import io
import re
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from soartlab.errors import DataError, SoartLabError
from soartlab.io.limits import Limits
from soartlab.io.messages import FOREIGN_ERRORS, foreign_error_text

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
"""Image files accepted inside a zip of class folders."""


def declared_size(stream: BinaryIO) -> tuple[int, int]:
    """(height, width) as the image header in ``stream`` declares it, without decoding a
    pixel; (0, 0) when the header cannot be read (``decode_image`` then says why, naming
    the image)."""
    try:
        with Image.open(stream) as image:
            width, height = image.size
    except FOREIGN_ERRORS:
        return 0, 0
    return int(height), int(width)


def declared_pixels(stream: BinaryIO) -> int:
    """width × height as the image header in ``stream`` declares it (0: unreadable)."""
    height, width = declared_size(stream)
    return height * width


def size_text(size: tuple[int, int]) -> str:
    """(H, W) → "H×W", the way sizes are written everywhere (height first)."""
    return f"{size[0]}×{size[1]}"


def choose_image_size(
    sizes: list[tuple[int, int]], image_size: tuple[int, int] | None
) -> tuple[tuple[int, int], dict[str, object]]:
    """The (H, W) the images declaring ``sizes`` are resized to, and notes about it.

    ``image_size`` None: the most common size among the images (the data's own size, so
    nothing is enlarged or squashed unless the images differ). The notes say which sizes
    were found (``"image_sizes"``: "8×8: 12 images") and how many images change size
    (``"resized"``), so the Data page can say when images were enlarged or squashed.
    """
    readable = [s for s in sizes if min(s) > 0]
    found: dict[tuple[int, int], int] = {}
    for size in readable:
        found[size] = found.get(size, 0) + 1
    if image_size is None:
        image_size = max(found, key=lambda s: (found[s], s)) if found else (36, 39)
    image_size = (int(image_size[0]), int(image_size[1]))
    listed = sorted(found.items(), key=lambda item: -item[1])
    notes: dict[str, object] = {
        "image_size": size_text(image_size),
        "image_sizes": ", ".join(f"{size_text(s)}: {n:,} images" for s, n in listed[:5])
        + (f" and {len(listed) - 5} more sizes" if len(listed) > 5 else ""),
        "resized": sum(n for s, n in found.items() if s != image_size),
    }
    return image_size, notes


def check_total_pixels(
    total: int, n_images: int, source: str, image_size: tuple[int, int], limits: Limits
) -> None:
    """Refuse an upload whose images declare more than ``limits.max_total_pixels`` in all:
    small files of huge, flat images would keep the decoder busy for minutes."""
    if total > limits.max_total_pixels:
        height, width = image_size
        raise DataError(
            f"'{source}' holds {n_images:,} images of {total:,} pixels in all; the limit is "
            f"{limits.max_total_pixels:,} pixels per upload. Nothing was decoded. Resize the "
            f"images before uploading (they are shrunk to {height}×{width} for the model "
            "anyway), or upload fewer at a time."
        )


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
    except SoartLabError:
        raise
    except Image.DecompressionBombError as exc:
        declared = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(declared.group(1)) if declared else None
        raise DataError(_too_many_pixels(member, pixels, limits)) from None
    except UnidentifiedImageError:
        raise DataError(
            f"'{member}' is not an image that can be read; expected PNG, JPEG or BMP."
        ) from None
    except FOREIGN_ERRORS as exc:
        raise DataError(
            f"Image '{member}' is truncated or corrupt ({foreign_error_text(exc)})."
        ) from None


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
