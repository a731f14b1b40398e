"""Every URL enters through app.py's navigation.

Streamlit decides once per server process whether an app uses its older ``pages/`` folder
mode: when the very first script run after the server starts is for a page's URL (a
bookmark such as ``/tune``), it runs that page file on its own, with a navigation made
from the folder's file names ("app, data, explore, …"), and keeps doing so until some run
calls ``st.navigation``. `through_app`, the first call of every page, notices such a run,
switches the process to app.py's navigation and, when the session has never been through
app.py (its first run: no widget has been used, so nothing is lost), reruns: app.py then
draws the real navigation, loads the session's data and runs the page the URL asked for.
(Streamlit's AppTest starts every run in the folder mode; those sessions went through
app.py on their first run, and a rerun would drop the click that started the run.)
"""

from __future__ import annotations

import streamlit as st

ENTERED = "soart_entered_through_app"  # set by app.py on every run of a session


def entered() -> None:
    """Called by app.py: this session has run through the app's navigation."""
    st.session_state[ENTERED] = True


def through_app() -> None:
    """Rerun through app.py when this page was started without it (see the module doc)."""
    # Streamlit's own switch, which its st.navigation flips the same way (streamlit is
    # pinned in requirements.txt; tests/test_browser_e2e.py checks the first visit).
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        if not st.session_state.get(ENTERED):
            st.rerun()
