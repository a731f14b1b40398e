"""Training curves: the loss and the validation rates per epoch (held-out rates in
records written before the validation part existed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from soartlab.plots.style import Translate, english, message_figure

RATE_SERIES = (
    # per-epoch held-out figures, in records written before the validation part
    ("test_accuracy", "test accuracy", "#2ca02c", "solid"),
    ("val_accuracy", "val accuracy", "#17becf", "solid"),
    ("escape_rate", "escape rate", "#d62728", "dot"),
    ("overkill_rate", "overkill rate", "#ff7f0e", "dot"),
    # the validation part's, which choose the epoch kept
    ("val_escape_rate", "val escape rate", "#d62728", "dot"),
    ("val_overkill_rate", "val overkill rate", "#ff7f0e", "dot"),
)


def training_curves(
    history: Sequence[Mapping[str, float]], *, translate: Translate = english
) -> go.Figure:
    """Loss (left axis) and accuracy / escape / overkill rates (right axis, 0–1) per epoch.

    ``history`` is one dict per epoch with ``epoch`` and ``loss``, and optionally
    ``val_accuracy``, ``val_escape_rate``, ``val_overkill_rate`` (older records:
    ``test_accuracy``, ``escape_rate``, ``overkill_rate``); an epoch
    missing a key leaves a gap in that line. ``translate``: see ``plots.style``.
    """
    # literal calls, so the catalogue finds every word (soartlab.ui.catalogue)
    names = {
        "test accuracy": translate("test accuracy"),
        "val accuracy": translate("val accuracy"),
        "escape rate": translate("escape rate"),
        "overkill rate": translate("overkill rate"),
        "val escape rate": translate("val escape rate"),
        "val overkill rate": translate("val overkill rate"),
    }
    if not history:
        return message_figure(translate("no epochs yet"), translate("training"))
    epochs = [row.get("epoch", number) for number, row in enumerate(history, start=1)]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Scatter(
            x=epochs,
            y=[row.get("loss") for row in history],
            name=translate("loss"),
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
                name=names[name],
                mode="lines+markers",
                line={"color": color, "dash": dash},
                hovertemplate=f"{names[name]} %{{y:.1%}}<extra></extra>",
            ),
            secondary_y=True,
        )
    # whole epochs only on x; the rate axis keeps its own ticks at round percentages
    fig.update_xaxes(title_text=translate("epoch"), dtick=1, tick0=1)
    fig.update_yaxes(title_text=translate("loss"), secondary_y=False, rangemode="tozero")
    fig.update_yaxes(
        title_text=translate("rate"),
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
        title=translate("training"), hovermode="x unified", legend={"orientation": "h", "y": -0.2}
    )
    return fig
