"""Live sliders for the Tune page: a Streamlit component that redraws while dragging.

The component (``components/tune_live.js`` and ``.css``, Streamlit's own component API,
no network) owns the scale, offset and floor inputs and draws the before/after pair
histograms in the browser. It gets each class's raw distances pre-binned on
`FINE_BINS` fine bins (never the raw points, so the payload does not grow with the
number of pairs); the transform is increasing, so the "after" histogram is those bins
re-binned at their transformed centres, in JavaScript, on every input event. When the
user stops moving for `SETTLE_MS`, the component reports the values back and the
``on_change`` callback stores them (the page then updates the loss's view and Preview).

AppTest cannot run JavaScript: the page keeps a server-drawn path (``st.slider`` and a
Plotly figure) that the page tests drive; the component is tested in a real browser.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from soartlab.plots import BAR_OPACITY, MATCHED_COLOR, UNMATCHED_COLOR, histogram_bins, shared_edges

FINE_BINS = 2000
# How long the user must stop moving before the values go back to Python: long enough
# that a drag or a run of key presses sends one value, short enough to feel immediate.
SETTLE_MS = 400
VALUE_NAMES = ("scale", "offset", "floor")
COMPONENT_KEY = "tune_live"
# The words the component draws (tune_live.js has their English).
TEXT_KEYS = ("scale", "offset", "floor", "matched", "unmatched", "distance", "fraction", "margin")

_ASSETS = Path(__file__).parent / "components"
_component = st.components.v2.component(
    "soartlab_tune_live",
    js=(_ASSETS / "tune_live.js").read_text(encoding="utf-8"),
    css=(_ASSETS / "tune_live.css").read_text(encoding="utf-8"),
)


@dataclass(frozen=True)
class FineBins:
    """Counts of matched and unmatched raw distances on equal-width bins over [low, high]."""

    low: float
    high: float
    matched: np.ndarray  # (FINE_BINS,) int
    unmatched: np.ndarray  # (FINE_BINS,) int

    @classmethod
    def of(cls, matched: np.ndarray, unmatched: np.ndarray, bins: int = FINE_BINS) -> FineBins:
        """Bin matched ``(Nm,)`` and unmatched ``(Nu,)`` distances on shared fine edges
        (non-finite values dropped, as the server-drawn histograms drop them)."""
        edges = shared_edges(matched, unmatched, bins=bins)
        return cls(
            float(edges[0]),
            float(edges[-1]),
            histogram_bins(matched, edges),
            histogram_bins(unmatched, edges),
        )

    def to_dict(self) -> dict:
        return {
            "low": self.low,
            "high": self.high,
            "matched": self.matched.tolist(),
            "unmatched": self.unmatched.tolist(),
        }


def reported_values(payload: object) -> dict[str, float] | None:
    """The three values from a component report, or None when it is not one: a report
    comes from the browser, so anything but three finite numbers is ignored."""
    if not isinstance(payload, Mapping):
        return None
    values = {}
    for name in VALUE_NAMES:
        value = payload.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if not math.isfinite(value):
            return None
        values[name] = float(value)
    return values


def live_sliders(
    fine: FineBins,
    values: Mapping[str, float],
    ranges: Mapping[str, tuple[float, float, float]],
    *,
    margin: float | None,
    titles: tuple[str, str],
    on_change: Callable[[dict[str, float]], None],
    texts: Mapping[str, str] | None = None,
) -> None:
    """Mount the component: ``values`` and ``ranges`` (name → (low, high, step)) for
    scale, offset and floor, the margin marker, the panel titles. ``on_change`` gets the
    values the user settled on (called from Streamlit's widget callback, before the rerun).
    ``texts``: the component's words in the page's language (keys of `TEXT_KEYS`; missing
    ones in English).
    ``margin`` None draws no margin marker (a distance the loss does not use)."""

    def report() -> None:
        chosen = reported_values(st.session_state[COMPONENT_KEY].get("change"))
        if chosen is not None:
            on_change(chosen)

    _component(
        key=COMPONENT_KEY,
        data={
            "fine": fine.to_dict(),
            "values": {name: float(values[name]) for name in VALUE_NAMES},
            "ranges": {name: [float(v) for v in ranges[name]] for name in VALUE_NAMES},
            "margin": None if margin is None else float(margin),
            "titles": list(titles),
            "texts": dict(texts or {}),
            "colors": {"matched": MATCHED_COLOR, "unmatched": UNMATCHED_COLOR},
            "opacity": BAR_OPACITY,
            "settle_ms": SETTLE_MS,
        },
        on_change_change=report,
    )
