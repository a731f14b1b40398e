"""Plotly figure builders: pure functions from arrays to ``go.Figure``.

Nothing here imports Streamlit, so every figure can be unit-tested as a plain object.
Histograms are binned in NumPy and sent as bars, never as raw points, so the payload a
browser receives does not grow with the number of pairs. Shapes: ``N`` samples, ``K``
classes, ``H×W`` image.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

MATCHED_COLOR = "#1f77b4"
UNMATCHED_COLOR = "#d62728"
GOOD_COLOR = "#2ca02c"
# Warm first, then others that stay clear of the good class's green.
DEFECT_PALETTE = (
    "#d62728",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    "#7f7f7f",
    "#f7b6d2",
    "#c49c94",
)
BAR_OPACITY = 0.55
MAX_GRID_IMAGES = 64
# Thumbnails larger than this on a side are block-averaged down, which keeps the grid's
# payload small for uploaded high-resolution images.
MAX_THUMBNAIL_SIDE = 64
RATE_SERIES = (
    ("test_accuracy", "test accuracy", "#2ca02c", "solid"),
    ("val_accuracy", "val accuracy", "#17becf", "solid"),
    ("escape_rate", "escape rate", "#d62728", "dot"),
    ("overkill_rate", "overkill rate", "#ff7f0e", "dot"),
)


# --- helpers ---------------------------------------------------------------------------


def _finite(values: np.ndarray | Sequence[float]) -> np.ndarray:
    """Flatten to float64 and drop NaN / inf, which ``np.histogram`` cannot bin."""
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


def shared_edges(
    *arrays: np.ndarray | Sequence[float],
    bins: int = 40,
    range: tuple[float, float] | None = None,  # named as in np.histogram
) -> np.ndarray:
    """Bin edges ``(bins + 1,)`` covering every finite value of all ``arrays``.

    Pass ``range=(lo, hi)`` to fix the span. With no finite values the edges span
    [0, 1]; a single repeated value gets a unit-wide span around it.
    """
    if bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins}.")
    if range is None:
        finite = [_finite(a) for a in arrays]
        finite = [a for a in finite if a.size]
        if finite:
            low = min(float(a.min()) for a in finite)
            high = max(float(a.max()) for a in finite)
        else:
            low, high = 0.0, 1.0
    else:
        low, high = float(range[0]), float(range[1])
        if not (math.isfinite(low) and math.isfinite(high)) or high < low:
            raise ValueError(f"range must be finite with lo <= hi, got {range}.")
    if high == low:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, int(bins) + 1)


def histogram_bins(values: np.ndarray | Sequence[float], edges: np.ndarray) -> np.ndarray:
    """Counts ``(len(edges) - 1,)`` of the finite ``values`` in each bin (as ``np.histogram``)."""
    counts, _ = np.histogram(_finite(values), bins=np.asarray(edges, dtype=np.float64))
    return counts


def _message_figure(message: str, title: str = "") -> go.Figure:
    """An empty figure that says why it is empty."""
    fig = go.Figure()
    fig.add_annotation(
        text=message,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        showarrow=False,
        font={"size": 16, "color": "#666"},
    )
    fig.update_layout(title=title, xaxis={"visible": False}, yaxis={"visible": False})
    return fig


def _histogram_traces(
    matched: np.ndarray,
    unmatched: np.ndarray,
    edges: np.ndarray,
    *,
    showlegend: bool = True,
    axes: tuple[str, str] | None = None,
) -> list[dict]:
    """Two overlaid bar traces as plain dicts, each bar the fraction of its own side's pairs.

    The dicts hold exactly what ``go.Bar`` would store (a test compares them), so the
    figure can be built without Plotly re-validating them on every slider move. ``axes``
    is the subplot's ``(xaxis, yaxis)``, e.g. ``("x2", "y2")``; None for a single plot.
    """
    centers = (edges[:-1] + edges[1:]) / 2
    widths = np.diff(edges)
    # Edges from shared_edges are uniform: one number instead of an array of widths.
    width = float(widths[0]) if np.allclose(widths, widths[0]) else widths
    traces = []
    for name, values, color in (
        ("Matched", matched, MATCHED_COLOR),
        ("Unmatched", unmatched, UNMATCHED_COLOR),
    ):
        counts = histogram_bins(values, edges)
        total = counts.sum()
        fractions = counts / total if total else np.zeros(len(counts))
        trace = {
            "type": "bar",
            "x": centers,
            "y": fractions,
            "width": width,
            "name": name,
            "legendgroup": name,
            "showlegend": showlegend,
            "marker": {"color": color, "line": {"width": 0}},
            "opacity": BAR_OPACITY,
            "customdata": counts,
            "hovertemplate": (
                f"{name}<br>%{{x:.4g}}<br>%{{y:.1%}} of pairs (%{{customdata}})<extra></extra>"
            ),
        }
        if axes is not None:
            trace["xaxis"], trace["yaxis"] = axes
        traces.append(trace)
    return traces


def _empty_sides(matched: np.ndarray, unmatched: np.ndarray) -> str | None:
    """A note naming the side(s) without pairs, or None when both have some."""
    if not matched.size and not unmatched.size:
        return "no pairs"
    if not matched.size:
        return "no matched pairs"
    if not unmatched.size:
        return "no unmatched pairs"
    return None


# --- histograms ------------------------------------------------------------------------
#
# A slider move on the Tune page rebuilds the before/after histograms. Building them
# through Plotly's validated API (make_subplots, add_vline, update_layout) takes tens of
# ms, all of it for a layout that never changes. So the layout is built that way once
# per key, kept as JSON (no user data in it), and each call only fills in the binned
# traces, the notes and the threshold line as plain dicts.

BEFORE_AFTER_TITLES = ("before tune", "after tune")
THRESHOLD_LINE = {"line_dash": "dash", "line_color": "black"}


@functools.lru_cache(maxsize=32)
def _histogram_layout_json(panels: int, title: str, x_title: str, template_name: str) -> str:
    """The validated layout of a one-panel or before/after (``panels == 2``) histogram.

    Its last shape and last annotation are a threshold line at x = 0 on the last panel,
    for ``_histogram_layout`` to move or drop. ``template_name`` is Plotly's default
    template when called; it is part of the key so that changing the default is seen.
    """
    if panels == 1:
        fig = go.Figure()
        fig.update_layout(
            title=title,
            barmode="overlay",
            bargap=0,
            xaxis_title=x_title,
            yaxis_title="fraction of pairs",
            yaxis_tickformat=".0%",
            legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        )
        panel = {}
    else:
        fig = make_subplots(rows=1, cols=panels, subplot_titles=BEFORE_AFTER_TITLES)
        fig.update_xaxes(title_text=x_title)
        fig.update_yaxes(title_text="fraction of pairs", row=1, col=1)
        fig.update_yaxes(tickformat=".0%")
        fig.update_layout(
            barmode="overlay",
            bargap=0,
            legend={"orientation": "h", "yanchor": "bottom", "y": 1.08, "x": 0},
        )
        # The skeleton has no traces yet, so the line must not skip "empty" subplots.
        panel = {"row": 1, "col": panels, "exclude_empty_subplots": False}
    fig.add_vline(
        x=0.0,
        annotation_text="threshold",
        annotation_position="top right",
        **THRESHOLD_LINE,
        **panel,
    )
    return json.dumps(fig.layout.to_plotly_json())


def _histogram_layout(
    panels: int, title: str, x_title: str, notes: list[dict], threshold: float | None
) -> dict:
    """A fresh layout dict: the cached layout plus ``notes`` (annotation dicts) and the
    threshold line at ``threshold`` (none when None)."""
    layout = json.loads(_histogram_layout_json(panels, title, x_title, pio.templates.default))
    line = layout.pop("shapes").pop()
    label = layout["annotations"].pop()
    layout["annotations"].extend(notes)
    if threshold is not None:
        x = float(threshold)
        line["x0"] = line["x1"] = label["x"] = x
        label["text"] = f"threshold {x:.3g}"
        layout["shapes"] = [line]
        layout["annotations"].append(label)
    if not layout["annotations"]:
        del layout["annotations"]
    return layout


def _note(text: str, *, x: float, y: float, xref: str, yref: str) -> dict:
    """A plain annotation dict, as ``fig.add_annotation(..., showarrow=False)`` stores it."""
    return {"showarrow": False, "text": text, "x": x, "xref": xref, "y": y, "yref": yref}


def _unvalidated_figure(traces: list[dict], layout: dict) -> go.Figure:
    """A ``go.Figure`` of dicts that are valid by construction (tests compare them with
    Plotly's own), skipping the per-property validation that dominates a redraw."""
    return go.Figure({"data": traces, "layout": layout}, _validate=False)


def pair_histogram(
    matched: np.ndarray | Sequence[float],
    unmatched: np.ndarray | Sequence[float],
    *,
    bins: int = 40,
    title: str = "",
    threshold: float | None = None,
    x_title: str = "distance",
) -> go.Figure:
    """Overlaid histograms of matched ``(Nm,)`` and unmatched ``(Nu,)`` pair distances.

    Both are binned on shared edges; each bar is the fraction of its own side's pairs,
    so sides of unequal size compare. Non-finite values are dropped. ``threshold`` adds
    a labelled vertical line.
    """
    matched_values, unmatched_values = _finite(matched), _finite(unmatched)
    note = _empty_sides(matched_values, unmatched_values)
    if note == "no pairs":
        return _message_figure(note, title)
    edges = shared_edges(matched_values, unmatched_values, bins=bins)
    notes = []
    if note:
        notes.append(_note(note, x=0.5, y=0.95, xref="paper", yref="paper"))
    return _unvalidated_figure(
        _histogram_traces(matched_values, unmatched_values, edges),
        _histogram_layout(1, title, x_title, notes, threshold),
    )


def before_after_histograms(
    raw_matched: np.ndarray | Sequence[float],
    raw_unmatched: np.ndarray | Sequence[float],
    tuned_matched: np.ndarray | Sequence[float],
    tuned_unmatched: np.ndarray | Sequence[float],
    *,
    bins: int = 40,
    threshold: float | None = None,
) -> go.Figure:
    """Pair histograms before and after tuning, side by side (each side its own edges).

    Inputs are 1-D distance arrays. ``threshold`` is on the tuned scale, so its line is
    drawn on the "after tune" panel only. The legend appears once and toggles both panels.
    Cheap enough to call on every slider move (a few ms at 100k pairs).
    """
    traces: list[dict] = []
    notes: list[dict] = []
    panels = ((raw_matched, raw_unmatched), (tuned_matched, tuned_unmatched))
    for col, (matched, unmatched) in enumerate(panels, start=1):
        matched_values, unmatched_values = _finite(matched), _finite(unmatched)
        suffix = "" if col == 1 else str(col)
        note = _empty_sides(matched_values, unmatched_values)
        if note != "no pairs":
            edges = shared_edges(matched_values, unmatched_values, bins=bins)
            traces += _histogram_traces(
                matched_values,
                unmatched_values,
                edges,
                showlegend=col == 1,
                axes=(f"x{suffix}", f"y{suffix}"),
            )
        if note:
            notes.append(
                _note(note, x=0.5, y=0.5, xref=f"x{suffix} domain", yref=f"y{suffix} domain")
            )
    return _unvalidated_figure(traces, _histogram_layout(2, "", "distance", notes, threshold))


# --- embeddings ------------------------------------------------------------------------


def _class_color(class_index: int, good_index: int) -> str:
    """Green for the good class, a palette colour for each defect class."""
    if class_index == good_index:
        return GOOD_COLOR
    defect_rank = class_index if class_index < good_index else class_index - 1
    return DEFECT_PALETTE[defect_rank % len(DEFECT_PALETTE)]


def _name_of(label_names: Sequence[str], index: int) -> str:
    return str(label_names[index]) if 0 <= index < len(label_names) else str(index)


def pca_scatter(
    points: np.ndarray,
    labels: np.ndarray | Sequence[int],
    label_names: Sequence[str],
    *,
    good_index: int = 0,
    predictions: np.ndarray | Sequence[int] | None = None,
    indices: np.ndarray | Sequence[int] | None = None,
    title: str = "",
) -> go.Figure:
    """Scatter of projected embeddings ``(N, 2)`` (Scattergl) or ``(N, 3)`` (Scatter3d).

    ``labels`` ``(N,)`` are class indices into ``label_names``; one trace per class so the
    legend toggles classes. The good class is green circles, defects palette diamonds;
    with ``predictions`` ``(N,)`` misclassified points are drawn as crosses. Hover shows
    ``indices`` ``(N,)`` (default ``0..N-1``), label and prediction.
    """
    points = np.asarray(points, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).ravel()
    if points.ndim != 2 or points.shape[1] not in (2, 3):
        raise ValueError(f"points must have shape (N, 2) or (N, 3), got {points.shape}.")
    n = points.shape[0]
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match points, got {labels.shape}.")
    if n == 0:
        return _message_figure("no points", title)
    if predictions is not None:
        predictions = np.asarray(predictions, dtype=np.int64).ravel()
        if predictions.shape != (n,):
            raise ValueError(
                f"predictions must have shape ({n},) to match points, got {predictions.shape}."
            )
    indices = np.arange(n) if indices is None else np.asarray(indices).ravel()
    if indices.shape != (n,):
        raise ValueError(f"indices must have shape ({n},) to match points, got {indices.shape}.")

    is_3d = points.shape[1] == 3
    fig = go.Figure()
    for class_index in np.unique(labels):
        class_index = int(class_index)
        mask = labels == class_index
        name = _name_of(label_names, class_index)
        base_symbol = "circle" if class_index == good_index else "diamond"
        if predictions is None:
            predicted = ["–"] * int(mask.sum())
            symbols: str | list[str] = base_symbol
        else:
            class_predictions = predictions[mask]
            predicted = [_name_of(label_names, int(p)) for p in class_predictions]
            symbols = [base_symbol if p == class_index else "x" for p in class_predictions]
        customdata = np.column_stack([indices[mask].astype(str), np.asarray(predicted, dtype=str)])
        marker = {
            "color": _class_color(class_index, good_index),
            "symbol": symbols,
            "size": (4 if is_3d else 7) if class_index == good_index else (5 if is_3d else 8),
            "opacity": 0.8,
        }
        hovertemplate = (
            f"index %{{customdata[0]}}<br>label {name}"
            "<br>prediction %{customdata[1]}<extra></extra>"
        )
        common = {
            "mode": "markers",
            "name": name,
            "marker": marker,
            "customdata": customdata,
            "hovertemplate": hovertemplate,
        }
        selected = points[mask]
        if is_3d:
            fig.add_trace(
                go.Scatter3d(x=selected[:, 0], y=selected[:, 1], z=selected[:, 2], **common)
            )
        else:
            fig.add_trace(go.Scattergl(x=selected[:, 0], y=selected[:, 1], **common))
    if is_3d:
        fig.update_layout(scene={"xaxis_title": "PC1", "yaxis_title": "PC2", "zaxis_title": "PC3"})
    else:
        fig.update_layout(xaxis_title="PC1", yaxis_title="PC2")
    fig.update_layout(title=title, legend_title_text="true class")
    return fig


# --- classification --------------------------------------------------------------------


def confusion_heatmap(
    confusion: np.ndarray | Sequence[Sequence[int]],
    label_names: Sequence[str],
    *,
    normalize: bool = False,
    title: str = "",
) -> go.Figure:
    """Confusion matrix ``(K, K)`` (rows true, columns predicted) as a heatmap.

    Colour is the row fraction, so small defect classes are as visible as large ones.
    Cell text gives count and row % ("12<br>(80.0%)"); ``normalize=True`` leads with the
    percentage instead ("80.0%<br>(12)"). Each cell's customdata is ``[true, pred]``.
    """
    matrix = np.asarray(confusion, dtype=np.int64)
    if matrix.size == 0:
        return _message_figure("no predictions", title)
    k = len(label_names)
    if matrix.shape != (k, k):
        raise ValueError(
            f"confusion must have shape ({k}, {k}) to match label_names, got {matrix.shape}."
        )
    row_totals = matrix.sum(axis=1, keepdims=True)
    fractions = np.divide(
        matrix, row_totals, out=np.zeros(matrix.shape, dtype=np.float64), where=row_totals > 0
    )
    if normalize:
        text = [[f"{fractions[i, j]:.1%}<br>({matrix[i, j]})" for j in range(k)] for i in range(k)]
    else:
        text = [[f"{matrix[i, j]}<br>({fractions[i, j]:.1%})" for j in range(k)] for i in range(k)]
    true_index, pred_index = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    names = [str(name) for name in label_names]
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
            colorbar={"title": {"text": "row fraction"}, "tickformat": ".0%"},
            hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        xaxis={"title": "predicted", "type": "category", "side": "bottom"},
        # Categories top-to-bottom in label order, as a confusion matrix is read.
        yaxis={"title": "true", "type": "category", "autorange": "reversed"},
        clickmode="event+select",
    )
    return fig


def class_counts_bar(
    label_names: Sequence[str], counts: np.ndarray | Sequence[int], good_index: int = 0
) -> go.Figure:
    """Samples per class ``(K,)`` as bars; the good class green, defects palette colours."""
    counts = np.asarray(counts, dtype=np.int64).ravel()
    if len(label_names) != counts.size:
        raise ValueError(
            f"counts must have one entry per class ({len(label_names)}), got {counts.size}."
        )
    if counts.size == 0:
        return _message_figure("no classes")
    fig = go.Figure(
        go.Bar(
            x=[str(name) for name in label_names],
            y=counts,
            text=counts,
            textposition="outside",
            marker={"color": [_class_color(i, good_index) for i in range(counts.size)]},
            hovertemplate="%{x}: %{y} samples<extra></extra>",
            name="samples",
        )
    )
    fig.update_layout(
        xaxis={"title": "class", "type": "category"},
        yaxis_title="samples",
        showlegend=False,
    )
    return fig


# --- training --------------------------------------------------------------------------


def training_curves(history: Sequence[Mapping[str, float]]) -> go.Figure:
    """Loss (left axis) and accuracy / escape / overkill rates (right axis, 0–1) per epoch.

    ``history`` is one dict per epoch with ``epoch`` and ``loss``, and optionally
    ``test_accuracy``, ``val_accuracy``, ``escape_rate``, ``overkill_rate``; an epoch
    missing a key leaves a gap in that line.
    """
    if not history:
        return _message_figure("no epochs yet", "training")
    epochs = [row.get("epoch", number) for number, row in enumerate(history, start=1)]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Scatter(
            x=epochs,
            y=[row.get("loss") for row in history],
            name="loss",
            mode="lines+markers",
            line={"color": "#1f77b4", "width": 2},
        ),
        secondary_y=False,
    )
    has_rates = False
    for key, name, color, dash in RATE_SERIES:
        values = [row.get(key) for row in history]
        if all(value is None for value in values):
            continue
        has_rates = True
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=values,
                name=name,
                mode="lines+markers",
                line={"color": color, "dash": dash},
                hovertemplate=f"{name} %{{y:.1%}}<extra></extra>",
            ),
            secondary_y=True,
        )
    # whole epochs only on x; the rate axis keeps its own ticks at round percentages
    fig.update_xaxes(title_text="epoch", dtick=1, tick0=1)
    fig.update_yaxes(title_text="loss", secondary_y=False, rangemode="tozero")
    fig.update_yaxes(
        title_text="rate",
        secondary_y=True,
        range=[0, 1.02],
        tick0=0,
        dtick=0.2,
        tickmode="linear",
        tickformat=".0%",
        showgrid=False,
        visible=has_rates,
    )
    fig.update_layout(
        title="training", hovermode="x unified", legend={"orientation": "h", "y": -0.2}
    )
    return fig


# --- images ----------------------------------------------------------------------------


def _thumbnail(image: np.ndarray) -> np.ndarray:
    """Block-average an ``(H, W)`` image so neither side exceeds ``MAX_THUMBNAIL_SIDE``."""
    factor = math.ceil(max(image.shape) / MAX_THUMBNAIL_SIDE)
    if factor <= 1:
        return image
    h, w = image.shape
    padded_h, padded_w = math.ceil(h / factor) * factor, math.ceil(w / factor) * factor
    padded = np.pad(image, ((0, padded_h - h), (0, padded_w - w)), mode="edge")
    return padded.reshape(padded_h // factor, factor, padded_w // factor, factor).mean(axis=(1, 3))


def sample_grid(
    images: np.ndarray,
    titles: Sequence[str] | None = None,
    *,
    columns: int = 8,
    zmin: float = 0,
    zmax: float = 1,
) -> go.Figure:
    """Grid of grayscale images ``(N, H, W)``, the first ``MAX_GRID_IMAGES`` of them.

    Drawn upright with equal aspect and no axes; ``titles`` ``(N,)`` go above each image.
    Large images are block-averaged to thumbnails to keep the payload small.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.size == 0:
        return _message_figure("no samples")
    if images.ndim != 3:
        raise ValueError(f"images must have shape (N, H, W), got {images.shape}.")
    if columns < 1:
        raise ValueError(f"columns must be a positive integer, got {columns}.")
    if titles is not None and len(titles) != images.shape[0]:
        raise ValueError(
            f"titles must have one entry per image ({images.shape[0]}), got {len(titles)}."
        )
    shown = images[:MAX_GRID_IMAGES]
    n = shown.shape[0]
    columns = min(columns, n)
    rows = math.ceil(n / columns)
    subplot_titles = [str(t) for t in titles[:n]] if titles is not None else None
    fig = make_subplots(
        rows=rows,
        cols=columns,
        subplot_titles=subplot_titles,
        horizontal_spacing=0.01,
        vertical_spacing=min(0.3 / rows, 0.08) if subplot_titles else 0.01,
    )
    for position, image in enumerate(shown):
        row, col = divmod(position, columns)
        fig.add_trace(
            go.Heatmap(
                z=_thumbnail(image),
                colorscale="gray",
                zmin=zmin,
                zmax=zmax,
                showscale=False,
                hovertemplate="%{z:.2f}<extra></extra>",
            ),
            row=row + 1,
            col=col + 1,
        )
        axis_number = "" if position == 0 else str(position + 1)
        fig.update_yaxes(scaleanchor=f"x{axis_number}", row=row + 1, col=col + 1)
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", constrain="domain")
    fig.update_annotations(font_size=10)
    fig.update_layout(
        height=max(160, 110 * rows),
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        plot_bgcolor="white",
    )
    if images.shape[0] > MAX_GRID_IMAGES:
        fig.update_layout(title=f"first {MAX_GRID_IMAGES} of {images.shape[0]} samples")
    return fig
