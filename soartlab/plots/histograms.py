"""Pair-distance histograms: matched against unmatched pairs, alone or before/after tuning.

Histograms are binned in NumPy and sent as bars, never as raw points, so the payload a
browser receives does not grow with the number of pairs. Distances are 1-D arrays.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from soartlab.errors import SoartLabError
from soartlab.plots.style import Translate, english, message_figure

MATCHED_COLOR = "#1f77b4"
UNMATCHED_COLOR = "#d62728"
BAR_OPACITY = 0.55


# --- helpers ---------------------------------------------------------------------------


def _finite(values: np.ndarray | Sequence[float]) -> np.ndarray:
    """Flatten to float64 and drop NaN / inf, which ``np.histogram`` cannot bin."""
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


def shared_edges(*arrays: np.ndarray | Sequence[float], bins: int = 40) -> np.ndarray:
    """Bin edges ``(bins + 1,)`` covering every finite value of all ``arrays``.

    With no finite values the edges span [0, 1]; a single repeated value gets a
    unit-wide span around it.
    """
    if bins < 1:
        raise SoartLabError(f"bins must be a positive integer, got {bins}.")
    finite = [values for values in map(_finite, arrays) if values.size]
    if finite:
        low = min(float(values.min()) for values in finite)
        high = max(float(values.max()) for values in finite)
    else:
        low, high = 0.0, 1.0
    if high == low:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, int(bins) + 1)


def histogram_bins(values: np.ndarray | Sequence[float], edges: np.ndarray) -> np.ndarray:
    """Counts ``(len(edges) - 1,)`` of the finite ``values`` in each bin (as ``np.histogram``)."""
    counts, _ = np.histogram(_finite(values), bins=np.asarray(edges, dtype=np.float64))
    return counts


def _histogram_traces(
    matched: np.ndarray,
    unmatched: np.ndarray,
    edges: np.ndarray,
    *,
    showlegend: bool = True,
    axes: tuple[str, str] | None = None,
    translate: Translate = english,
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
    of_pairs = translate("of pairs")
    for name, values, color in (
        (translate("Matched"), matched, MATCHED_COLOR),
        (translate("Unmatched"), unmatched, UNMATCHED_COLOR),
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
                f"{name}<br>%{{x:.4g}}<br>%{{y:.1%}} {of_pairs} (%{{customdata}})<extra></extra>"
            ),
        }
        if axes is not None:
            trace["xaxis"], trace["yaxis"] = axes
        traces.append(trace)
    return traces


NO_PAIRS = "no pairs"


def _empty_sides(matched: np.ndarray, unmatched: np.ndarray) -> str | None:
    """A note naming the side(s) without pairs (English), or None when both have some."""
    if not matched.size and not unmatched.size:
        return NO_PAIRS
    if not matched.size:
        return "no matched pairs"
    if not unmatched.size:
        return "no unmatched pairs"
    return None


def _note_text(note: str, translate: Translate) -> str:
    words = {
        NO_PAIRS: translate("no pairs"),
        "no matched pairs": translate("no matched pairs"),
        "no unmatched pairs": translate("no unmatched pairs"),
    }
    return words[note]


# --- histograms ------------------------------------------------------------------------
#
# A slider move on the Tune page rebuilds the before/after histograms. Building them
# through Plotly's validated API (make_subplots, add_vline, update_layout) takes tens of
# ms, all of it for a layout that never changes. So the layout is built that way once
# per key, kept as JSON (no user data in it), and each call only fills in the binned
# traces, the notes and the vertical lines as plain dicts.

BEFORE_AFTER_TITLES = ("before tune", "after tune")
# The vertical lines a histogram can carry, in drawing order: how add_vline draws each.
# The floor and the margin are where the contrastive loss stops pulling matched pairs
# and stops pushing unmatched ones (d = max(scale·gamma + offset, floor)).
VERTICAL_LINES = {
    "threshold": {"line_dash": "dash", "line_color": "black", "annotation_position": "top right"},
    "floor": {"line_dash": "dot", "line_color": "#7f7f7f", "annotation_position": "top left"},
    "margin": {
        "line_dash": "dashdot",
        "line_color": "#ff7f0e",
        "annotation_position": "bottom right",
    },
}


@functools.lru_cache(maxsize=32)
def _histogram_layout_json(
    panels: int, title: str, x_title: str, template_name: str, words: tuple[str, ...]
) -> str:
    """The validated layout of a one-panel or before/after (``panels == 2``) histogram.

    Its last shapes and annotations are one line per `VERTICAL_LINES` entry at x = 0 on
    the last panel, in that order, for ``_histogram_layout`` to move or drop.
    ``template_name`` is Plotly's default template when called; it is part of the key so
    that changing the default is seen. ``words``: "fraction of pairs", the two panel
    titles, then the line names (`VERTICAL_LINES` order), in the figure's language.
    """
    y_title, panel_titles, line_names = words[0], words[1:3], words[3:]
    if panels == 1:
        fig = go.Figure()
        fig.update_layout(
            title=title,
            barmode="overlay",
            bargap=0,
            xaxis_title=x_title,
            yaxis_title=y_title,
            yaxis_tickformat=".0%",
            legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        )
        panel = {}
    else:
        fig = make_subplots(rows=1, cols=panels, subplot_titles=panel_titles)
        fig.update_xaxes(title_text=x_title)
        fig.update_yaxes(title_text=y_title, row=1, col=1)
        fig.update_yaxes(tickformat=".0%")
        fig.update_layout(
            barmode="overlay",
            bargap=0,
            legend={"orientation": "h", "yanchor": "bottom", "y": 1.08, "x": 0},
        )
        # The skeleton has no traces yet, so the line must not skip "empty" subplots.
        panel = {"row": 1, "col": panels, "exclude_empty_subplots": False}
    for name, style in zip(line_names, VERTICAL_LINES.values(), strict=True):
        fig.add_vline(x=0.0, annotation_text=name, **style, **panel)
    return json.dumps(fig.layout.to_plotly_json())


def _histogram_layout(
    panels: int,
    title: str,
    x_title: str,
    notes: list[dict],
    lines: dict[str, float | None],
    translate: Translate = english,
) -> dict:
    """A fresh layout dict: the cached layout plus ``notes`` (annotation dicts) and a
    labelled vertical line at each of ``lines`` (`VERTICAL_LINES` name → x; None: no line)."""
    line_names = {
        "threshold": translate("threshold"),
        "floor": translate("floor"),
        "margin": translate("margin"),
    }
    words = (
        translate("fraction of pairs"),
        translate("before tune"),
        translate("after tune"),
        *(line_names[name] for name in VERTICAL_LINES),
    )
    layout = json.loads(
        _histogram_layout_json(panels, title, x_title, pio.templates.default, words)
    )
    count = len(VERTICAL_LINES)
    templates = zip(
        VERTICAL_LINES, layout.pop("shapes")[-count:], layout["annotations"][-count:], strict=True
    )
    del layout["annotations"][-count:]
    layout["annotations"].extend(notes)
    shapes = []
    for name, line, label in templates:
        x = lines.get(name)
        if x is None:
            continue
        line["x0"] = line["x1"] = label["x"] = float(x)
        label["text"] = f"{line_names[name]} {float(x):.3g}"
        shapes.append(line)
        layout["annotations"].append(label)
    if shapes:
        layout["shapes"] = shapes
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
    translate: Translate = english,
) -> go.Figure:
    """Overlaid histograms of matched ``(Nm,)`` and unmatched ``(Nu,)`` pair distances.

    Both are binned on shared edges; each bar is the fraction of its own side's pairs,
    so sides of unequal size compare. Non-finite values are dropped. ``threshold`` adds
    a labelled vertical line. ``translate``: see ``plots.style`` (``x_title`` is taken as
    given).
    """
    matched_values, unmatched_values = _finite(matched), _finite(unmatched)
    note = _empty_sides(matched_values, unmatched_values)
    if note == NO_PAIRS:
        return message_figure(_note_text(note, translate), title)
    edges = shared_edges(matched_values, unmatched_values, bins=bins)
    notes = []
    if note:
        notes.append(_note(_note_text(note, translate), x=0.5, y=0.95, xref="paper", yref="paper"))
    return _unvalidated_figure(
        _histogram_traces(matched_values, unmatched_values, edges, translate=translate),
        _histogram_layout(1, title, x_title, notes, {"threshold": threshold}, translate),
    )


def before_after_histograms(
    raw_matched: np.ndarray | Sequence[float],
    raw_unmatched: np.ndarray | Sequence[float],
    tuned_matched: np.ndarray | Sequence[float],
    tuned_unmatched: np.ndarray | Sequence[float],
    *,
    bins: int = 40,
    threshold: float | None = None,
    floor: float | None = None,
    margin: float | None = None,
    translate: Translate = english,
) -> go.Figure:
    """Pair histograms before and after tuning, side by side (each side its own edges).

    Inputs are 1-D distance arrays. ``threshold``, ``floor`` (the transform's) and
    ``margin`` (the contrastive loss's) are on the tuned scale, so their labelled lines
    are drawn on the "after tune" panel only; None draws none. The legend appears once
    and toggles both panels. Cheap enough to call on every slider move (a few ms at 100k
    pairs).
    """
    traces: list[dict] = []
    notes: list[dict] = []
    panels = ((raw_matched, raw_unmatched), (tuned_matched, tuned_unmatched))
    for col, (matched, unmatched) in enumerate(panels, start=1):
        matched_values, unmatched_values = _finite(matched), _finite(unmatched)
        suffix = "" if col == 1 else str(col)
        note = _empty_sides(matched_values, unmatched_values)
        if note != NO_PAIRS:
            edges = shared_edges(matched_values, unmatched_values, bins=bins)
            traces += _histogram_traces(
                matched_values,
                unmatched_values,
                edges,
                showlegend=col == 1,
                axes=(f"x{suffix}", f"y{suffix}"),
                translate=translate,
            )
        if note:
            notes.append(
                _note(
                    _note_text(note, translate),
                    x=0.5,
                    y=0.5,
                    xref=f"x{suffix} domain",
                    yref=f"y{suffix} domain",
                )
            )
    lines = {"threshold": threshold, "floor": floor, "margin": margin}
    layout = _histogram_layout(2, "", translate("distance"), notes, lines, translate)
    return _unvalidated_figure(traces, layout)
