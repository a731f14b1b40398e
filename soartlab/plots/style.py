"""What every figure shares: the class colours and the figure that says why it is empty."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import plotly.graph_objects as go

# Every builder takes ``translate``: the interface's ``_`` (text → the session's language),
# applied to each word it draws. The engine has no notion of languages: by default the
# words stay English. Literal ``translate("…")`` calls are what the catalogue extracts.
Translate = Callable[[str], str]


def english(text: str) -> str:
    """The default ``translate``: the text as written."""
    return text


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


def class_color(class_index: int, good_index: int) -> str:
    """Green for the good class, a palette colour for each defect class."""
    if class_index == good_index:
        return GOOD_COLOR
    defect_rank = class_index if class_index < good_index else class_index - 1
    return DEFECT_PALETTE[defect_rank % len(DEFECT_PALETTE)]


def class_name(label_names: Sequence[str], index: int) -> str:
    """``label_names[index]``, or the index itself when it is not a known class."""
    return str(label_names[index]) if 0 <= index < len(label_names) else str(index)


def message_figure(message: str, title: str = "") -> go.Figure:
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
