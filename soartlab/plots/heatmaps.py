"""Heatmaps of where a part differs from its nearest good reference, as PNG images built
with NumPy, Matplotlib's colour maps and Pillow (no browser, no kaleido), so the same
bytes are shown in the app and downloaded.

Colours are fixed by the scales handed in (`explain.heatmap_scale`, from the training
parts), never stretched to one image: zero is white in both maps, so a part that
matches its reference stays pale.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

RESIDUAL_COLORMAP = "RdBu_r"  # signed: blue darker than the reference, red brighter, white 0
GRADIENT_COLORMAP = "Reds"  # non-negative: white 0, dark red at the scale and above
UPSCALE = 5  # screen pixels per image pixel (nearest neighbour: pixels stay square)
_GAP = 8
_TITLE_HEIGHT = 18
_FOOT_HEIGHT = 18
_NO_IMAGE = (235, 235, 235)  # a tile with nothing to show (no reference pixels)
PART_TITLE = "part"
RESIDUAL_TITLE = "residual y - beta*x"
GRADIENT_TITLE = "|d distance / d y|"


def colour_values(values: np.ndarray, vmin: float, vmax: float, colormap: str) -> np.ndarray:
    """``values`` (H, W) as RGB (H, W, 3) uint8 under ``colormap`` on the fixed range
    [vmin, vmax] (values outside take the end colours; NaN is drawn grey)."""
    values = np.asarray(values, dtype=np.float64)
    span = vmax - vmin if vmax > vmin else 1.0
    position = np.clip((values - vmin) / span, 0.0, 1.0)
    rgb = colormaps[colormap](np.nan_to_num(position, nan=0.5))[..., :3]
    rgb = np.round(rgb * 255).astype(np.uint8)
    rgb[~np.isfinite(values)] = _NO_IMAGE
    return rgb


def _tile(rgb: np.ndarray | None, shape: tuple[int, int], upscale: int) -> Image.Image:
    if rgb is None:
        return Image.new("RGB", (shape[1] * upscale, shape[0] * upscale), _NO_IMAGE)
    big = np.repeat(np.repeat(rgb, upscale, axis=0), upscale, axis=1)
    return Image.fromarray(big, mode="RGB")


MIN_TILE_WIDTH = 130  # pixels: the widest title or scale line in Pillow's default font


def explanation_png(
    part: np.ndarray,
    residual: np.ndarray,
    gradient: np.ndarray,
    residual_scale: float,
    gradient_scale: float,
    *,
    references: Sequence[tuple[str, np.ndarray | None]] = (),
    upscale: int = UPSCALE,
) -> bytes:
    """One PNG of tiles side by side: the ``part`` (H, W), each of ``references``
    ``(title, image (H, W) or None)`` (grey, on the joint range of the part and the
    references; a blank tile for None: pixels not known), the ``residual`` (H, W) on
    ±``residual_scale`` and the ``gradient`` (H, W) on [0, ``gradient_scale``]. Titles
    above (Pillow's built-in font: keep them ASCII), the scales below."""
    part = np.asarray(part, dtype=np.float64)
    shape = part.shape
    greys = [part, *(np.asarray(image) for _, image in references if image is not None)]
    shown = np.concatenate([g.ravel() for g in greys])
    low, high = float(np.nanmin(shown)), float(np.nanmax(shown))
    tiles = [(PART_TITLE, colour_values(part, low, high, "gray"), "")]
    for title, image in references:
        rgb = None if image is None else colour_values(image, low, high, "gray")
        tiles.append((title, rgb, ""))
    tiles.append(
        (
            RESIDUAL_TITLE,
            colour_values(residual, -residual_scale, residual_scale, RESIDUAL_COLORMAP),
            f"scale +/-{residual_scale:.3g}",
        )
    )
    tiles.append(
        (
            GRADIENT_TITLE,
            colour_values(gradient, 0.0, gradient_scale, GRADIENT_COLORMAP),
            f"scale 0-{gradient_scale:.3g}",
        )
    )
    # small parts (8×8 digits) are enlarged further, so each tile is wide enough for its
    # title and scale (else the words of neighbouring tiles overlap)
    upscale = max(upscale, -(-MIN_TILE_WIDTH // max(shape[1], 1)))
    tile_w, tile_h = shape[1] * upscale, shape[0] * upscale
    width = len(tiles) * tile_w + (len(tiles) + 1) * _GAP
    height = _TITLE_HEIGHT + tile_h + _FOOT_HEIGHT + 2 * _GAP
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=12)
    for position, (title, rgb, foot) in enumerate(tiles):
        left = _GAP + position * (tile_w + _GAP)
        draw.text((left, _GAP // 2), title, fill=(40, 40, 40), font=font)
        canvas.paste(_tile(rgb, shape, upscale), (left, _GAP + _TITLE_HEIGHT))
        draw.text((left, _GAP + _TITLE_HEIGHT + tile_h + 3), foot, fill=(90, 90, 90), font=font)
    out = io.BytesIO()
    canvas.save(out, format="PNG", compress_level=6)
    return out.getvalue()
