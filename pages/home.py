"""Home: what the app does, where this session stands, and the next step."""

import streamlit as st

from soartlab.ui import entry, state
from soartlab.ui.i18n import _
from soartlab.ui.widgets import session_status

entry.through_app()

st.title("SOART Lab")
st.markdown(
    _(
        "Train a Siamese network that tells good parts from defects, with the SOART3 "
        "distance.  \n"
        "1. **Tune** the distance until matched and unmatched pairs separate.  \n"
        "2. **Train** on your inspection data, then **explore**, **download** and "
        "**predict** new lots."
    )
)

status = session_status()
st.subheader(_("This session"))
cols = st.columns(4)
cols[0].metric(_("Data"), _("loaded") if status["data"] else _("none"))
cols[0].caption(status["data"] or _("Load a file on the Data page."))
cols[1].metric(_("Tuned transform"), _("stored") if status["transform"] else _("not tuned"))
cols[1].caption(
    status["transform"]
    or _("Training uses a transform that learns on the data (the article's, else Suggest's).")
)
cols[2].metric(_("Trained model"), _("ready") if status["model"] else _("none"))
cols[2].caption(status["model"] or _("Train one on the Train page."))
cols[3].metric(_("Training"), _("running") if status["training"] else _("idle"))
cols[3].caption(status["training"] or _("No training in progress."))

st.subheader(_("Next step"))
if status["data"] is None:
    st.page_link(
        state.DATA_PAGE, label=_("Load your data (or the demo set)"), icon=":material/folder_open:"
    )
elif status["training"]:
    st.page_link(state.TRAIN_PAGE, label=_("Watch the training"), icon=":material/model_training:")
elif status["model"] is None:
    st.page_link(
        state.TRAIN_PAGE, label=_("Train a model on this data"), icon=":material/model_training:"
    )
    st.page_link(
        state.TUNE_PAGE, label=_("Or first tune the SOART3 distance"), icon=":material/tune:"
    )
else:
    st.page_link(
        state.EXPLORE_PAGE, label=_("Explore the trained model"), icon=":material/scatter_plot:"
    )
    st.page_link(state.PREDICT_PAGE, label=_("Predict a new lot"), icon=":material/label:")
    st.page_link(
        state.TUNE_PAGE,
        label=_("Next round: re-tune on the new embeddings"),
        icon=":material/tune:",
    )
