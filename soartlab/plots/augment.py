"""Augmented samples as training sees them: each row one sample, first as it is, then
several augmented draws of it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from soartlab.errors import SoartLabError
from soartlab.plots.samples import sample_grid
from soartlab.plots.style import Translate, english, message_figure


def augmentation_grid(
    originals: np.ndarray,
    variants: np.ndarray,
    labels: Sequence[str] | None = None,
    *,
    translate: Translate = english,
) -> go.Figure:
    """Grid of ``originals`` ``(n, H, W)`` (first column, titled with ``labels`` ``(n,)``)
    beside their augmented ``variants`` ``(n, k, H, W)``, on one gray scale taken from the
    originals (1st to 99th percentile), so brightness jitter shows as it is."""
    originals = np.asarray(originals, dtype=np.float32)
    variants = np.asarray(variants, dtype=np.float32)
    if originals.size == 0:
        return message_figure(translate("no samples"))
    if originals.ndim != 3 or variants.ndim != 4 or variants.shape[0] != originals.shape[0]:
        raise SoartLabError(
            f"originals must be (n, H, W) and variants (n, k, H, W) with the same n and "
            f"image size; got {originals.shape} and {variants.shape}."
        )
    if variants.shape[2:] != originals.shape[1:]:
        raise SoartLabError(
            f"variants must be images of the originals' size {originals.shape[1:]}; got "
            f"{variants.shape[2:]}."
        )
    n, k = variants.shape[:2]
    if labels is not None and len(labels) != n:
        raise SoartLabError(f"labels must have one entry per sample ({n}), got {len(labels)}.")
    rows = np.concatenate([originals[:, None], variants], axis=1)  # (n, 1 + k, H, W)
    titles = []
    for i in range(n):
        titles.append(str(labels[i]) if labels is not None else translate("original"))
        titles.extend(
            translate("augmented {n}").format(n=j + 1) if i == 0 else "" for j in range(k)
        )
    low, high = np.percentile(originals, [1, 99])
    if not high > low:
        low, high = float(originals.min()), float(originals.min()) + 1.0
    return sample_grid(
        rows.reshape(-1, *originals.shape[1:]),
        titles,
        columns=1 + k,
        zmin=float(low),
        zmax=float(high),
        translate=translate,
    )
