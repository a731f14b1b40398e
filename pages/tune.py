"""Tune: reshape the distance the loss sees, see which pairs it would learn from, preview."""

import streamlit as st

from soartlab.ui import entry, i18n, state, tune
from soartlab.ui.feedback import EngineErrors
from soartlab.ui.i18n import _
from soartlab.ui.widgets import require_data

entry.through_app()

st.title(_("Tune the distance"))
st.caption(
    _(
        "Matched pairs (same label, blue) should end up near 0 and unmatched pairs (red) far "
        "away. Set the transform so that the loss learns from both, preview where it leads, "
        "then use the values for training."
    )
)
require_data()
with st.expander(_("Why the sliders do not move ROC AUC, and what they do change")):
    st.markdown(_(tune.EXPLANATION))

has_model = state.current_run_dir() is not None
sources = [tune.SOURCE_NETWORK, tune.SOURCE_MODEL, tune.SOURCE_RAW]
if not has_model:
    sources.remove(tune.SOURCE_MODEL)
state.persisted(state.TUNE_SOURCE, tune.SOURCE_NETWORK)
if st.session_state[state.TUNE_SOURCE] not in sources:
    state.remember(state.TUNE_SOURCE, tune.SOURCE_NETWORK)

cols = st.columns([2, 1, 2, 1, 1])
source = cols[0].radio(
    _("Embedding source"),
    sources,
    format_func=i18n.formatter(),
    key=state.TUNE_SOURCE,
    help=_(
        "The distances the loss will see are those between the embeddings of the network "
        "to be trained; raw features are a reference."
    ),
)
n_pairs = cols[1].number_input(
    _("Pairs"),
    min_value=100,
    max_value=100_000,
    step=500,
    key=state.persisted("tune_pairs", tune.DEFAULT_PAIRS),
    help=_(
        "Half matched, half unmatched, from the training split; drawn with the Train page's seed."
    ),
)
distance_label = cols[2].selectbox(
    _("Distance"),
    list(tune.DISTANCES),
    format_func=i18n.formatter(),
    key=state.persisted("tune_distance", tune.LOSS_DISTANCE),
)
p_v, p_m, p = 4.0, 1.0, 3.0
if distance_label.startswith("SOART3"):
    p_v = cols[3].number_input(
        _("Order of v"),
        min_value=0.5,
        max_value=64.0,
        step=0.5,
        key=state.persisted("tune_p_v", 4.0),
    )
    p_m = cols[4].number_input(
        _("Order of m"),
        min_value=0.5,
        max_value=64.0,
        step=0.5,
        key=state.persisted("tune_p_m", 1.0),
    )
elif distance_label == "Minkowski-p":
    p = cols[3].number_input(
        "p", min_value=0.5, max_value=64.0, step=0.5, key=state.persisted("tune_p", 3.0)
    )
live = cols[2].toggle(
    _("Live in the browser"),
    key=state.persisted(tune.LIVE_KEY, True),
    help=_(
        "Histograms redrawn in the browser while you drag. Off: drawn by the server "
        "(with hover details) when a slider is released."
    ),
)

guard = EngineErrors()
sample = None
with guard, st.spinner(_("Computing pair distances…")):
    sample = tune.pair_sample(
        source, int(n_pairs), distance_label, float(p_v), float(p_m), float(p)
    )
if sample is None:
    st.stop()
st.caption(_("Distances on {source}.").format(source=sample.source))
tune.start_from_suggestion(sample, source)

tune.tuning_panel(sample, float(p_v), float(p_m), live=live)

if distance_label == tune.LOSS_DISTANCE:
    tune.preview_section(float(p_v), float(p_m))
else:
    st.info(
        _(
            "Training's SOART3 loss uses the transform on SOART3 gamma; other distances are "
            "shown for comparison (Suggest, the loss's view and Preview need SOART3 gamma)."
        )
    )

tuned = state.tuned_transform()
if tuned is None:
    st.caption(
        _(
            "Nothing stored yet: the Train page trains with the article's values when the "
            "loss learns from them on the network to be trained, else with Suggest's (where "
            "these sliders start)."
        )
    )
else:
    t = tuned.transform
    st.caption(
        _(
            "Stored for training: scale {scale:.3g}, offset {offset:.3g}, floor {floor:.3g} "
            "(orders v={p_v:g}, m={p_m:g})."
        ).format(scale=t.scale, offset=t.offset, floor=t.floor, p_v=tuned.p_v, p_m=tuned.p_m)
    )
    st.page_link(
        state.TRAIN_PAGE, label=_("Train with these values"), icon=":material/model_training:"
    )
