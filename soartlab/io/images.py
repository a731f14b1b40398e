"""Decoding one image without trusting it: the header's width × height is checked
against ``Limits.max_image_pixels`` before any pixel is decoded."""

from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image, UnidentifiedImageError

from soartlab.errors import DataError
from soartlab.io.limits import Limits

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
"""Image files accepted inside a zip of class folders."""


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
