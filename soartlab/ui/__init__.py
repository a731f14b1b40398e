"""Streamlit glue for the SOART Lab app.

This package (with ``app.py`` and ``pages/``) is the only place that imports
streamlit. It holds the per-session state keys and accessors, the upload path, the
training job that runs in a worker thread, and small widgets shared by the pages.
Everything a user loads or trains lives in ``st.session_state``: two browser sessions
never share data, sliders or models.
"""
