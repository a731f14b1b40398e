"""Heatmaps of where a part differs from its nearest good reference, as PNG images built
with NumPy, Matplotlib's colour maps and Pillow (no browser, no kaleido), so the same
bytes are shown in the app and downloaded.

Colours are fixed by the scales handed in (`explain.heatmap_scale`, from the training
parts), never stretched to one image: zero is white in both maps, so a part that
matches its reference stays pale.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

from soartlab.plots.style import Translate, english

RESIDUAL_COLORMAP = "RdBu_r"  # signed: blue darker than the reference, red brighter, white 0
GRADIENT_COLORMAP = "Reds"  # non-negative: white 0, dark red at the scale and above
UPSCALE = 5  # screen pixels per image pixel (nearest neighbour: pixels stay square)
_GAP = 8
_TITLE_HEIGHT = 18
_FOOT_HEIGHT = 18
_NO_IMAGE = (235, 235, 235)  # a tile with nothing to show (no reference pixels)
FONT_SIZE = 12
# Fonts that draw Japanese, looked for among the system's fonts (Debian's fonts-noto-cjk
# first); without one, Pillow's built-in font draws ASCII only, and the titles stay English.
CJK_FONT_NAMES = ("NotoSansCJK-Regular", "NotoSansCJKjp-Regular", "ipaexg", "ipag", "TakaoPGothic")


@functools.cache
def _cjk_font_path() -> str | None:
    from matplotlib import font_manager

    fonts = font_manager.findSystemFonts()
    for name in CJK_FONT_NAMES:
        for path in fonts:
            if name.lower() in path.lower():
                return path
    return None


def _font(text_is_ascii: bool):
    """Pillow's built-in font for ASCII words, a system CJK font otherwise (None: none)."""
    if text_is_ascii:
        return ImageFont.load_default(size=FONT_SIZE)
    path = _cjk_font_path()
    return None if path is None else ImageFont.truetype(path, FONT_SIZE)


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


MIN_TILE_WIDTH = 150  # pixels: about the widest title or scale line at FONT_SIZE


def explanation_png(
    part: np.ndarray,
    residual: np.ndarray,
    gradient: np.ndarray,
    residual_scale: float,
    gradient_scale: float,
    *,
    references: Sequence[tuple[str, np.ndarray | None]] = (),
    upscale: int = UPSCALE,
    translate: Translate = english,
) -> bytes:
    """One PNG of tiles side by side: the ``part`` (H, W), each of ``references``
    ``(title, image (H, W) or None)`` (grey, on the joint range of the part and the
    references; a blank tile for None: pixels not known), the ``residual`` (H, W) on
    ±``residual_scale`` and the ``gradient`` (H, W) on [0, ``gradient_scale``]. Titles
    above, the scales below, in ``translate``'s words (see ``plots.style``) when a system
    font draws them (`CJK_FONT_NAMES`), else in English."""
    words = [
        translate("part"),
        translate("residual y - beta*x"),
        translate("|d distance / d y|"),
        translate("scale +/-{scale}"),
        translate("scale 0-{scale}"),
    ]
    font = _font(all(w.isascii() for w in words) and all(t.isascii() for t, _ in references))
    if font is None:  # no font for these words: the English ones, Pillow's own font
        words = [
            "part",
            "residual y - beta*x",
            "|d distance / d y|",
            "scale +/-{scale}",
            "scale 0-{scale}",
        ]
        references = [(t if t.isascii() else "", image) for t, image in references]
        font = _font(True)
    part_title, residual_title, gradient_title, residual_foot, gradient_foot = words
    part = np.asarray(part, dtype=np.float64)
    shape = part.shape
    greys = [part, *(np.asarray(image) for _, image in references if image is not None)]
    shown = np.concatenate([g.ravel() for g in greys])
    low, high = float(np.nanmin(shown)), float(np.nanmax(shown))
    tiles = [(part_title, colour_values(part, low, high, "gray"), "")]
    for title, image in references:
        rgb = None if image is None else colour_values(image, low, high, "gray")
        tiles.append((title, rgb, ""))
    tiles.append(
        (
            residual_title,
            colour_values(residual, -residual_scale, residual_scale, RESIDUAL_COLORMAP),
            residual_foot.format(scale=f"{residual_scale:.3g}"),
        )
    )
    tiles.append(
        (
            gradient_title,
            colour_values(gradient, 0.0, gradient_scale, GRADIENT_COLORMAP),
            gradient_foot.format(scale=f"{gradient_scale:.3g}"),
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
    for position, (title, rgb, foot) in enumerate(tiles):
        left = _GAP + position * (tile_w + _GAP)
        draw.text((left, _GAP // 2), title, fill=(40, 40, 40), font=font)
        canvas.paste(_tile(rgb, shape, upscale), (left, _GAP + _TITLE_HEIGHT))
        draw.text((left, _GAP + _TITLE_HEIGHT + tile_h + 3), foot, fill=(90, 90, 90), font=font)
    out = io.BytesIO()
    canvas.save(out, format="PNG", compress_level=6)
    return out.getvalue()
