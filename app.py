"""SOART Lab dashboard: routes between the pages and shows where the session stands.

Run with ``streamlit run app.py``. Pages are thin scripts in ``pages/``; the Streamlit
glue they share lives in ``soartlab/ui/``; everything else is the engine.
"""

import streamlit as st

from soartlab.ui import auth, entry, i18n, state, train_view, workspace
from soartlab.ui.i18n import _
from soartlab.ui.widgets import sidebar_status

i18n.choose_language()  # ?lang= or the session's choice, before any text is drawn
st.set_page_config(page_title="SOART Lab", page_icon=":material/biotech:", layout="wide")

pages = [
    st.Page(
        "pages/home.py", title=_("Home"), icon=":material/home:", url_path="home", default=True
    ),
    st.Page(state.DATA_PAGE, title=_("Data"), icon=":material/folder_open:", url_path="data"),
    st.Page(state.TUNE_PAGE, title=_("Tune"), icon=":material/tune:", url_path="tune"),
    st.Page(state.TRAIN_PAGE, title=_("Train"), icon=":material/model_training:", url_path="train"),
    st.Page(
        state.EXPLORE_PAGE, title=_("Explore"), icon=":material/scatter_plot:", url_path="explore"
    ),
    st.Page(state.PREDICT_PAGE, title=_("Predict"), icon=":material/label:", url_path="predict"),
    st.Page(state.RUNS_PAGE, title=_("Runs"), icon=":material/history:", url_path="runs"),
]
# With [auth] in the secrets, nobody gets further than a sign-in screen without signing
# in (the navigation is hidden there, not left to the pages folder's file names).
signed_out = auth.signed_out()
page = st.navigation(pages, position="hidden" if signed_out else "sidebar")
if signed_out:
    auth.sign_in_screen()
# The session's workspace (?ws= in the address): what a refresh or a new tab restores.
workspace.attach()
# Every page works at once: a first visit starts on the demo set.
state.ensure_demo_loaded()
entry.entered()
train_view.collect_finished()
i18n.language_switch(st.sidebar)
# Drawn before the page and again after it, in the same place: a page that loads data,
# stores a transform or deletes a run changes what the panel says (it lagged one rerun).
status_panel = st.sidebar.empty()
sidebar_status(status_panel.container())
auth.sidebar()
refused = workspace.refused()
if refused:
    st.error(refused)
try:
    page.run()
finally:
    sidebar_status(status_panel.container())
    workspace.save()
