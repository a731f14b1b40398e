"""What a run's embeddings show on held-out samples: the PCA scatter of the embeddings and
the confusion matrix of the classes predicted from them. ``N`` samples, ``K`` classes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from soartlab.errors import SoartLabError
from soartlab.plots.style import Translate, class_color, class_name, english, message_figure


def _same_length(name: str, values: np.ndarray | Sequence[int], n: int) -> np.ndarray:
    """``values`` as a flat ``(n,)`` array; ``SoartLabError`` naming ``name`` otherwise."""
    array = np.asarray(values).ravel()
    if array.shape != (n,):
        raise SoartLabError(f"{name} must have shape ({n},) to match points, got {array.shape}.")
    return array


def _class_trace(
    points: np.ndarray,
    class_index: int,
    label_names: Sequence[str],
    good_index: int,
    predictions: np.ndarray | None,
    indices: np.ndarray,
    translate: Translate = english,
) -> go.Scattergl | go.Scatter3d:
    """One class's points ``(n, 2)`` or ``(n, 3)``, misclassified ones (where
    ``predictions`` ``(n,)`` differ from ``class_index``) drawn as crosses."""
    name = class_name(label_names, class_index)
    is_good = class_index == good_index
    base_symbol = "circle" if is_good else "diamond"
    if predictions is None:
        predicted = ["–"] * len(points)
        symbols: str | list[str] = base_symbol
    else:
        predicted = [class_name(label_names, int(p)) for p in predictions]
        symbols = [base_symbol if p == class_index else "x" for p in predictions]
    is_3d = points.shape[1] == 3
    words = (translate("index"), translate("label"), translate("prediction"))
    common = {
        "mode": "markers",
        "name": name,
        "marker": {
            "color": class_color(class_index, good_index),
            "symbol": symbols,
            "size": (4 if is_3d else 7) if is_good else (5 if is_3d else 8),
            "opacity": 0.8,
        },
        "customdata": np.column_stack([indices.astype(str), np.asarray(predicted, dtype=str)]),
        "hovertemplate": (
            f"{words[0]} %{{customdata[0]}}<br>{words[1]} {name}"
            f"<br>{words[2]} %{{customdata[1]}}<extra></extra>"
        ),
    }
    if is_3d:
        return go.Scatter3d(x=points[:, 0], y=points[:, 1], z=points[:, 2], **common)
    return go.Scattergl(x=points[:, 0], y=points[:, 1], **common)


def pca_scatter(
    points: np.ndarray,
    labels: np.ndarray | Sequence[int],
    label_names: Sequence[str],
    *,
    good_index: int = 0,
    predictions: np.ndarray | Sequence[int] | None = None,
    indices: np.ndarray | Sequence[int] | None = None,
    title: str = "",
    translate: Translate = english,
) -> go.Figure:
    """Scatter of projected embeddings ``(N, 2)`` (Scattergl) or ``(N, 3)`` (Scatter3d).

    ``labels`` ``(N,)`` are class indices into ``label_names``; one trace per class so the
    legend toggles classes. The good class is green circles, defects palette diamonds;
    with ``predictions`` ``(N,)`` misclassified points are drawn as crosses. Hover shows
    ``indices`` ``(N,)`` (default ``0..N-1``), label and prediction.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] not in (2, 3):
        raise SoartLabError(f"points must have shape (N, 2) or (N, 3), got {points.shape}.")
    n = points.shape[0]
    labels = _same_length("labels", labels, n).astype(np.int64)
    if n == 0:
        return message_figure(translate("no points"), title)
    if predictions is not None:
        predictions = _same_length("predictions", predictions, n).astype(np.int64)
    indices = np.arange(n) if indices is None else _same_length("indices", indices, n)

    fig = go.Figure()
    for class_index in np.unique(labels):
        mask = labels == class_index
        fig.add_trace(
            _class_trace(
                points[mask],
                int(class_index),
                label_names,
                good_index,
                None if predictions is None else predictions[mask],
                indices[mask],
                translate,
            )
        )
    if points.shape[1] == 3:
        fig.update_layout(scene={"xaxis_title": "PC1", "yaxis_title": "PC2", "zaxis_title": "PC3"})
    else:
        fig.update_layout(xaxis_title="PC1", yaxis_title="PC2")
    fig.update_layout(title=title, legend_title_text=translate("true class"))
    return fig


def confusion_heatmap(
    confusion: np.ndarray | Sequence[Sequence[int]],
    label_names: Sequence[str],
    *,
    title: str = "",
    translate: Translate = english,
) -> go.Figure:
    """Confusion matrix ``(K, K)`` (rows true, columns predicted) as a heatmap.

    Colour is the row fraction, so small defect classes are as visible as large ones.
    Cell text gives count and row % ("12<br>(80.0%)"). Each cell's customdata is
    ``[true, pred]``.
    """
    matrix = np.asarray(confusion, dtype=np.int64)
    if matrix.size == 0:
        return message_figure(translate("no predictions"), title)
    k = len(label_names)
    if matrix.shape != (k, k):
        raise SoartLabError(
            f"confusion must have shape ({k}, {k}) to match label_names, got {matrix.shape}."
        )
    row_totals = matrix.sum(axis=1, keepdims=True)
    fractions = np.divide(
        matrix, row_totals, out=np.zeros(matrix.shape, dtype=np.float64), where=row_totals > 0
    )
    text = [[f"{matrix[i, j]}<br>({fractions[i, j]:.1%})" for j in range(k)] for i in range(k)]
    true_index, pred_index = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    names = [str(name) for name in label_names]
    true_word, predicted_word = translate("true"), translate("predicted")
    hover = f"{true_word} %{{y}}<br>{predicted_word} %{{x}}<br>%{{text}}<extra></extra>"
    fig = go.Figure(
        go.Heatmap(
            z=fractions,
            x=names,
            y=names,
            text=text,
            texttemplate="%{text}",
            customdata=np.stack([true_index, pred_index], axis=-1),
            colorscale="Blues",
            zmin=0.0,
            zmax=1.0,
            colorbar={"title": {"text": translate("row fraction")}, "tickformat": ".0%"},
            hovertemplate=hover,
        )
    )
    # Plotly reports no selection for a click on a heatmap, so in a browser a click did
    # nothing: one invisible square marker per cell takes the click (and the hover).
    fig.add_trace(
        go.Scatter(
            x=[names[j] for i in range(k) for j in range(k)],
            y=[names[i] for i in range(k) for j in range(k)],
            mode="markers",
            marker={"symbol": "square", "size": 30, "opacity": 0.0},
            customdata=[[i, j] for i in range(k) for j in range(k)],
            text=[text[i][j] for i in range(k) for j in range(k)],
            hovertemplate=hover,
            showlegend=False,
            name="cells",
        )
    )
    fig.update_layout(
        title=title,
        xaxis={"title": translate("predicted"), "type": "category", "side": "bottom"},
        # Categories top-to-bottom in label order, as a confusion matrix is read.
        yaxis={"title": translate("true"), "type": "category", "autorange": "reversed"},
        clickmode="event+select",
    )
    return fig
