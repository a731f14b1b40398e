"""SOART Lab dashboard: routes between the pages and shows where the session stands.

Run with ``streamlit run app.py``. Pages are thin scripts in ``pages/``; the Streamlit
glue they share lives in ``soartlab/ui/``; everything else is the engine.
"""

import streamlit as st

from soartlab.ui import state
from soartlab.ui.widgets import sidebar_status

st.set_page_config(page_title="SOART Lab", page_icon="🔬", layout="wide")

# Every page works at once: a first visit starts on the demo set.
state.ensure_demo_loaded()

pages = [
    st.Page("pages/home.py", title="Home", icon="🏠", url_path="home", default=True),
    st.Page(state.DATA_PAGE, title="Data", icon="📂", url_path="data"),
    st.Page(state.TUNE_PAGE, title="Tune", icon="🎚️", url_path="tune"),
    st.Page(state.TRAIN_PAGE, title="Train", icon="🏋️", url_path="train"),
    st.Page(state.EXPLORE_PAGE, title="Explore", icon="🔍", url_path="explore"),
    st.Page(state.PREDICT_PAGE, title="Predict", icon="🏷️", url_path="predict"),
    st.Page(state.RUNS_PAGE, title="Runs", icon="🗂️", url_path="runs"),
]
page = st.navigation(pages)
sidebar_status()
page.run()
