"""The Tune page's live part: pair distances computed once, a fragment that re-transforms.

Pair distances depend on the data, the embedding source, the distance and the number
of pairs; they are computed once per combination and kept in session state. The
sliders and the figure they drive sit in one ``@st.fragment``: moving a slider reruns
only the fragment, which applies the transform to the cached distances, re-bins them
(in NumPy, inside ``soartlab.plots``) and redraws. The raw side's separation report is
kept with the sample, so only the tuned side is scored again.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st

from soartlab.errors import SoartLabError
from soartlab.transform import ARTICLE_TRANSFORM, GammaTransform
from soartlab.ui import state
from soartlab.ui.feedback import EngineErrors

if TYPE_CHECKING:
    from soartlab.separation import SeparationReport

SOURCE_RAW = "Raw features"
SOURCE_MODEL = "Current model's embeddings"

# Shown name → engine name (soartlab.distances.get_distance).
DISTANCES = {
    "SOART3 gamma": "soart3",
    "SOART3 yita": "soart3_yita",
    "SOART3 beta": "soart3_beta",
    "Euclidean": "euclidean",
    "Minkowski-p": "minkowski",
    "Chebyshev": "chebyshev",
    "Cosine": "cosine",
}
DEFAULT_PAIRS = 2000
PAIR_SEED = 0

SCALE_KEY = "tune_scale"
OFFSET_KEY = "tune_offset"
FLOOR_KEY = "tune_floor"
# Size of the before/after histograms on the page (bench/bench_slider.py uses it too).
HISTOGRAM_LAYOUT = {"height": 380, "margin": {"t": 60, "b": 40}}


@dataclass(frozen=True)
class PairSample:
    """Raw (untransformed) distances of sampled matched / unmatched pairs.

    What depends only on the raw distances is computed on first use and kept with the
    sample, so a slider move does not redo it.
    """

    matched: np.ndarray  # (Nm,)
    unmatched: np.ndarray  # (Nu,)
    distance_label: str
    source: str

    @functools.cached_property
    def raw_report(self) -> SeparationReport:
        """Separation of the raw distances (the "before" side of the metrics)."""
        from soartlab.separation import separation_report

        return separation_report(self.matched, self.unmatched)

    @functools.cached_property
    def span(self) -> float:
        """A round number covering the raw distances, for the offset / floor slider ranges."""
        values = np.concatenate([self.matched, self.unmatched])
        values = values[np.isfinite(values)]
        top = float(np.percentile(np.abs(values), 99)) if values.size else 1.0
        top = max(top, 1.0)
        magnitude = 10 ** math.floor(math.log10(top))
        return math.ceil(top / magnitude) * magnitude


def distance_params(engine_name: str, p_v: float, p_m: float, p: float) -> dict[str, Any]:
    """Keyword arguments for ``get_distance`` (distances are raw; the sliders' transform
    is applied to the sampled distances)."""
    if engine_name.startswith("soart3"):
        return {"p_v": p_v, "p_m": p_m}
    if engine_name == "minkowski":
        return {"p": p}
    return {}


def source_vectors(source: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X (N, d or e), y (N,))`` for the chosen embedding source, cached per session."""
    data = state.loaded_data()
    if data is None:
        raise SoartLabError("No data loaded.")
    from soartlab.data import to_arrays

    if source == SOURCE_MODEL:
        run = state.current_run()
        if run is None:
            raise SoartLabError("No trained model yet: train one, or choose raw features.")
        from soartlab.workflow import embed_dataset

        key = (data.version, str(state.current_run_dir()))

        def compute() -> tuple[np.ndarray, np.ndarray]:
            return embed_dataset(run, data.dataset), to_arrays(data.dataset)[1]

        return state.cached("tune_embeddings", key, compute)
    return state.cached("tune_raw", (data.version,), lambda: to_arrays(data.dataset))


def pair_sample(
    source: str, n_pairs: int, distance_label: str, p_v: float, p_m: float, p: float
) -> PairSample:
    """Distances of ``n_pairs`` sampled pairs, computed once per setting in this session."""
    from soartlab.distances import get_distance
    from soartlab.evaluation import pair_distances

    data = state.loaded_data()
    engine_name = DISTANCES[distance_label]
    params = distance_params(engine_name, p_v, p_m, p)
    key = (
        data.version if data else 0,
        str(state.current_run_dir()) if source == SOURCE_MODEL else "",
        source,
        int(n_pairs),
        engine_name,
        tuple(sorted((k, str(v)) for k, v in params.items())),
    )

    def compute() -> PairSample:
        X, y = source_vectors(source)
        distance = get_distance(engine_name, **params)
        matched, unmatched = pair_distances(X, y, int(n_pairs), distance, seed=PAIR_SEED)
        return PairSample(
            np.asarray(matched, dtype=np.float64),
            np.asarray(unmatched, dtype=np.float64),
            distance_label,
            source,
        )

    return state.cached("tune_pairs", key, compute)


def _slider(label: str, key: str, default: float, low: float, high: float, help: str) -> float:
    state.persisted(key, default)
    value = float(st.session_state[key])
    # Widen the range when a suggested or remembered value lies outside it.
    low, high = min(low, math.floor(value)), max(high, math.ceil(value))
    return st.slider(
        label,
        min_value=float(low),
        max_value=float(high),
        step=(high - low) / 400,
        key=key,
        help=help,
    )


def _suggest(sample: PairSample) -> None:
    """Button callback: apply ``suggest_transform`` to the sliders."""
    from soartlab.separation import suggest_transform

    try:
        suggestion = suggest_transform(sample.matched, sample.unmatched)
    except SoartLabError as exc:
        st.session_state["tune_suggest_error"] = str(exc)
        return
    state.remember(SCALE_KEY, float(suggestion.scale))
    state.remember(OFFSET_KEY, float(suggestion.offset))
    state.remember(FLOOR_KEY, float(suggestion.floor))


def _use_for_training(p_v: float, p_m: float) -> None:
    try:
        transform = GammaTransform(
            scale=float(st.session_state[SCALE_KEY]),
            offset=float(st.session_state[OFFSET_KEY]),
            floor=float(st.session_state[FLOOR_KEY]),
        )
    except SoartLabError as exc:
        st.session_state["tune_suggest_error"] = str(exc)
        return
    state.set_tuned_transform(state.TunedTransform(transform, p_v=p_v, p_m=p_m))
    st.session_state["tune_stored"] = True


def _report_metrics(before: Any, after: Any) -> None:
    cols = st.columns(5)
    cols[0].metric("ROC AUC", f"{after.roc_auc:.3f}", f"{after.roc_auc - before.roc_auc:+.3f}")
    cols[1].metric(
        "Overlap",
        f"{after.overlap:.1%}",
        f"{(after.overlap - before.overlap) * 100:+.1f} pts",
        delta_color="inverse",
    )
    cols[2].metric(
        "Best threshold",
        f"{after.threshold:.3g}",
        help=f"Pairs at or below it are called matched. Before tuning: {before.threshold:.3g}.",
    )
    cols[3].metric(
        "Escape", f"{after.escape_rate:.1%}", help="Unmatched pairs called matched at the threshold"
    )
    cols[4].metric(
        "Overkill",
        f"{after.overkill_rate:.1%}",
        help="Matched pairs called unmatched at the threshold",
    )


@st.fragment
def tuning_panel(sample: PairSample, p_v: float, p_m: float) -> None:
    """Sliders, the before/after histograms and the separation figures, as one fragment."""
    from soartlab.plots import before_after_histograms
    from soartlab.separation import separation_report

    span = sample.span
    left, right = st.columns([1, 3])
    with left:
        scale = _slider(
            "Scale",
            SCALE_KEY,
            ARTICLE_TRANSFORM.scale,
            0.0,
            5.0,
            "Slope applied to the raw distance.",
        )
        offset = _slider(
            "Offset", OFFSET_KEY, ARTICLE_TRANSFORM.offset, -span, span, "Shift after scaling."
        )
        floor = _slider(
            "Floor", FLOOR_KEY, ARTICLE_TRANSFORM.floor, -span, span, "Smallest distance returned."
        )
        st.button(
            "Suggest",
            on_click=_suggest,
            args=(sample,),
            help="Scale and offset that put matched pairs near 0 and unmatched pairs near the margin (1).",
            width="stretch",
        )
        st.button(
            "Use for training",
            type="primary",
            on_click=_use_for_training,
            args=(p_v, p_m),
            help="Store these values; the Train page's SOART3 loss uses them.",
            width="stretch",
        )
        message = st.session_state.pop("tune_suggest_error", None)
        if message:
            st.error(message)
        if st.session_state.pop("tune_stored", False):
            st.success("Stored for training.")
    with right:
        guard = EngineErrors()
        with guard:
            transform = GammaTransform(scale=scale, offset=offset, floor=floor)
            tuned_matched = transform(sample.matched)
            tuned_unmatched = transform(sample.unmatched)
            before = sample.raw_report
            after = separation_report(tuned_matched, tuned_unmatched)
            # Built from plain dicts on a cached layout (see soartlab.plots): a few ms.
            figure = before_after_histograms(
                sample.matched,
                sample.unmatched,
                tuned_matched,
                tuned_unmatched,
                threshold=after.threshold,
            )
            figure.update_layout(HISTOGRAM_LAYOUT)
            st.plotly_chart(figure, key="tune_histograms", width="stretch")
            _report_metrics(before, after)
            st.caption(
                f"{after.n_matched:,} matched (blue) and {after.n_unmatched:,} unmatched (red) "
                f"pairs · {sample.distance_label} on {sample.source.lower()} · "
                "d = max(scale·raw + offset, floor)"
            )
