"""What the data holds: samples per class and grids of sample images. ``N`` samples,
``K`` classes, ``H×W`` image."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from soartlab.errors import SoartLabError
from soartlab.plots.style import Translate, class_color, english, message_figure

MAX_GRID_IMAGES = 64
# Thumbnails larger than this on a side are block-averaged down, which keeps the grid's
# payload small for uploaded high-resolution images.
MAX_THUMBNAIL_SIDE = 64


def class_counts_bar(
    label_names: Sequence[str],
    counts: np.ndarray | Sequence[int],
    good_index: int = 0,
    *,
    translate: Translate = english,
) -> go.Figure:
    """Samples per class ``(K,)`` as bars; the good class green, defects palette colours."""
    counts = np.asarray(counts, dtype=np.int64).ravel()
    if len(label_names) != counts.size:
        raise SoartLabError(
            f"counts must have one entry per class ({len(label_names)}), got {counts.size}."
        )
    if counts.size == 0:
        return message_figure(translate("no classes"))
    fig = go.Figure(
        go.Bar(
            x=[str(name) for name in label_names],
            y=counts,
            text=counts,
            textposition="outside",
            marker={"color": [class_color(i, good_index) for i in range(counts.size)]},
            hovertemplate="%{x}: %{y} " + translate("samples") + "<extra></extra>",
            name=translate("samples"),
        )
    )
    fig.update_layout(
        xaxis={"title": translate("class"), "type": "category"},
        yaxis_title=translate("samples"),
        showlegend=False,
    )
    return fig


def _thumbnail(image: np.ndarray) -> np.ndarray:
    """Block-average an ``(H, W)`` image so neither side exceeds ``MAX_THUMBNAIL_SIDE``."""
    factor = math.ceil(max(image.shape) / MAX_THUMBNAIL_SIDE)
    if factor <= 1:
        return image
    h, w = image.shape
    padded_h, padded_w = math.ceil(h / factor) * factor, math.ceil(w / factor) * factor
    padded = np.pad(image, ((0, padded_h - h), (0, padded_w - w)), mode="edge")
    return padded.reshape(padded_h // factor, factor, padded_w // factor, factor).mean(axis=(1, 3))


# A caption longer than this is cut at its start ("…0001.png"): the end of a file name
# tells parts apart; the whole name is in the hover text.
MAX_CAPTION_CHARS = 16


def _short(caption: str) -> str:
    if len(caption) <= MAX_CAPTION_CHARS:
        return caption
    return "…" + caption[-(MAX_CAPTION_CHARS - 1) :]


def sample_grid(
    images: np.ndarray,
    titles: Sequence[str] | None = None,
    *,
    columns: int = 8,
    zmin: float = 0,
    zmax: float = 1,
    captions: Sequence[str] | None = None,
    max_images: int = MAX_GRID_IMAGES,
    translate: Translate = english,
) -> go.Figure:
    """Grid of grayscale images ``(N, H, W)``, the first ``max_images`` of them.

    Drawn upright with equal aspect and no axes; ``titles`` ``(N,)`` go above each image,
    ``captions`` ``(N,)`` (file names, say; shortened, whole in the hover) below it.
    Large images are block-averaged to thumbnails to keep the payload small.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.size == 0:
        return message_figure(translate("no samples"))
    if images.ndim != 3:
        raise SoartLabError(f"images must have shape (N, H, W), got {images.shape}.")
    if columns < 1:
        raise SoartLabError(f"columns must be a positive integer, got {columns}.")
    for what, given in (("titles", titles), ("captions", captions)):
        if given is not None and len(given) != images.shape[0]:
            raise SoartLabError(
                f"{what} must have one entry per image ({images.shape[0]}), got {len(given)}."
            )
    shown = images[:max_images]
    n = shown.shape[0]
    columns = min(columns, n)
    rows = math.ceil(n / columns)
    subplot_titles = [str(t) for t in titles[:n]] if titles is not None else None
    fig = make_subplots(
        rows=rows,
        cols=columns,
        subplot_titles=subplot_titles,
        horizontal_spacing=0.01,
        vertical_spacing=(
            min(0.6 / rows, 0.2)
            if captions is not None
            else min(0.3 / rows, 0.08)
            if subplot_titles
            else 0.01
        ),
    )
    for position, image in enumerate(shown):
        row, col = divmod(position, columns)
        caption = None if captions is None else str(captions[position])
        hover = "" if not caption else caption.replace("%", "%%").replace("<", "&lt;") + "<br>"
        fig.add_trace(
            go.Heatmap(
                z=_thumbnail(image),
                colorscale="gray",
                zmin=zmin,
                zmax=zmax,
                showscale=False,
                hovertemplate=hover + "%{z:.2f}<extra></extra>",
            ),
            row=row + 1,
            col=col + 1,
        )
        axis_number = "" if position == 0 else str(position + 1)
        fig.update_yaxes(scaleanchor=f"x{axis_number}", row=row + 1, col=col + 1)
        if caption:
            fig.add_annotation(
                text=_short(caption),
                xref=f"x{axis_number} domain",
                yref=f"y{axis_number} domain",
                x=0.5,
                y=0,
                yanchor="top",
                showarrow=False,
                font={"size": 9},
                name="caption",
            )
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", constrain="domain")
    fig.update_annotations(font_size=10, selector=lambda a: a.name != "caption")
    fig.update_layout(
        height=max(160, (130 if captions is not None else 110) * rows),
        margin={"l": 10, "r": 10, "t": 30, "b": 10 if captions is None else 28},
        plot_bgcolor="white",
    )
    if images.shape[0] > max_images:
        fig.update_layout(
            title=translate("first {shown} of {total} samples").format(
                shown=max_images, total=images.shape[0]
            )
        )
    return fig
