"""The escape–overkill trade-off of a pass/fail threshold, with the operating point."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from soartlab.plots.style import GOOD_COLOR, Translate, english

CURVE_COLOR = "#1f77b4"
POINT_COLOR = "#d62728"


def escape_overkill_curve(
    escape,
    overkill,
    *,
    point: tuple[float, float] | None = None,
    point_label: str | None = None,
    title: str = "",
    x_title: str | None = None,
    y_title: str | None = None,
    translate: Translate = english,
) -> go.Figure:
    """Escape (x) against overkill (y), both (T,) in [0, 1], of one threshold swept over
    the scores (`decision.escape_overkill_curve`); ``point`` (escape, overkill) marks the
    operating point, whose review band (parts neither passed nor failed) puts it below the
    curve. Rates are shown in percent. ``translate``: see ``plots.style`` (applied to the
    words drawn; labels given are drawn as given). Defaults: "operating point", "escape
    rate (defects passed)", "overkill rate (good parts failed)"."""
    # literal calls, so the catalogue finds the words (soartlab.ui.catalogue)
    point_label = point_label or translate("operating point")
    x_title = x_title or translate("escape rate (defects passed)")
    y_title = y_title or translate("overkill rate (good parts failed)")
    hover = (
        translate("escape")
        + " %{x:.2f} %<br>"
        + translate("overkill")
        + " %{y:.2f} %<extra></extra>"
    )
    escape = 100 * np.asarray(escape, dtype=float)
    overkill = 100 * np.asarray(overkill, dtype=float)
    fig = go.Figure(
        go.Scatter(
            x=escape,
            y=overkill,
            mode="lines",
            name=translate("one threshold"),
            line={"color": CURVE_COLOR, "shape": "hv"},
            hovertemplate=hover,
        )
    )
    if point is not None:
        fig.add_trace(
            go.Scatter(
                x=[100 * point[0]],
                y=[100 * point[1]],
                mode="markers",
                name=point_label,
                marker={"color": POINT_COLOR, "size": 12, "symbol": "x"},
                hovertemplate=hover,
            )
        )
    fig.add_trace(
        go.Scatter(
            x=[0],
            y=[0],
            mode="markers",
            name=translate("perfect"),
            marker={"color": GOOD_COLOR, "size": 8, "symbol": "circle-open"},
            hoverinfo="skip",
        )
    )
    fig.update_layout(
        title=title,
        xaxis={"title": x_title, "ticksuffix": " %", "rangemode": "tozero"},
        yaxis={"title": y_title, "ticksuffix": " %", "rangemode": "tozero"},
        legend={"orientation": "h", "y": -0.2},
        margin={"t": 40 if title else 10},
    )
    return fig
