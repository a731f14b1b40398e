"""Tune: reshape the distance until matched and unmatched pairs separate."""

import streamlit as st

from soartlab.ui import entry, state, tune
from soartlab.ui.feedback import EngineErrors
from soartlab.ui.widgets import require_data

entry.through_app()

st.title("Tune the distance")
st.caption(
    "Matched pairs (same label, blue) should sit near 0 and unmatched pairs (red) far "
    "away. Move the sliders until the peaks stop overlapping, then use the values for training."
)
require_data()

has_model = state.current_run_dir() is not None
sources = [tune.SOURCE_RAW, tune.SOURCE_MODEL] if has_model else [tune.SOURCE_RAW]
state.persisted(state.TUNE_SOURCE, tune.SOURCE_RAW)
if st.session_state[state.TUNE_SOURCE] not in sources:
    state.remember(state.TUNE_SOURCE, tune.SOURCE_RAW)

cols = st.columns([2, 1, 2, 1, 1])
source = cols[0].radio(
    "Embedding source",
    sources,
    key=state.TUNE_SOURCE,
    help="Raw input features, or the embeddings of the current model (after training).",
)
n_pairs = cols[1].number_input(
    "Pairs",
    min_value=100,
    max_value=50_000,
    step=500,
    key=state.persisted("tune_pairs", tune.DEFAULT_PAIRS),
    help="Half matched, half unmatched; drawn once with a fixed seed.",
)
distance_label = cols[2].selectbox(
    "Distance", list(tune.DISTANCES), key=state.persisted("tune_distance", "SOART3 gamma")
)
p_v, p_m, p = 4.0, 1.0, 3.0
if distance_label.startswith("SOART3"):
    p_v = cols[3].number_input(
        "Order of v", min_value=0.5, max_value=64.0, step=0.5, key=state.persisted("tune_p_v", 4.0)
    )
    p_m = cols[4].number_input(
        "Order of m", min_value=0.5, max_value=64.0, step=0.5, key=state.persisted("tune_p_m", 1.0)
    )
elif distance_label == "Minkowski-p":
    p = cols[3].number_input(
        "p", min_value=0.5, max_value=64.0, step=0.5, key=state.persisted("tune_p", 3.0)
    )
if not has_model:
    cols[0].caption("Model embeddings become available after training.")

guard = EngineErrors()
sample = None
with guard, st.spinner("Computing pair distances…"):
    sample = tune.pair_sample(
        source, int(n_pairs), distance_label, float(p_v), float(p_m), float(p)
    )
if sample is None:
    st.stop()

tune.tuning_panel(sample, float(p_v), float(p_m))

tuned = state.tuned_transform()
if distance_label != "SOART3 gamma":
    st.info(
        "Training's SOART3 loss uses the transform on SOART3 gamma; other distances are shown for comparison."
    )
if tuned is not None:
    t = tuned.transform
    st.caption(
        f"Stored for training: scale {t.scale:.3g}, offset {t.offset:.3g}, floor {t.floor:.3g} "
        f"(orders v={tuned.p_v:g}, m={tuned.p_m:g})."
    )
    st.page_link(
        state.TRAIN_PAGE, label="Train with these values", icon=":material/model_training:"
    )
