"""Sign-in with the team's identity provider (Streamlit's OpenID Connect support).

When ``.streamlit/secrets.toml`` has an ``[auth]`` section, every page needs a signed-in
user: app.py shows `sign_in_screen` instead of the page while `signed_out`. The user is
an `soartlab.access.Actor` (`current`): their e-mail (else the provider's subject), and
whether they are on the admin list (``[soartlab] admins`` in the secrets, or
``$SOARTLAB_ADMINS``). Without ``[auth]`` the app runs in local single-user mode:
`current` is None and nothing is checked.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from soartlab.access import Actor, actor, admins_from
from soartlab.ui.i18n import _


def configured() -> bool:
    """Whether the secrets configure sign-in (an ``[auth]`` section)."""
    try:
        return bool(st.secrets.load_if_toml_exists() and "auth" in st.secrets)
    except Exception:  # an unreadable secrets file: Streamlit itself reports it
        return False


def _admins() -> frozenset[str]:
    section: Any = {}
    try:
        if st.secrets.load_if_toml_exists():
            section = st.secrets.get("soartlab", {})
    except Exception:
        section = {}
    listed = section.get("admins", []) if hasattr(section, "get") else []
    if isinstance(listed, str):
        listed = [listed]
    return admins_from(list(listed))


def current() -> Actor | None:
    """The signed-in user, or None in local single-user mode (or before sign-in)."""
    if not configured() or not st.user.is_logged_in:
        return None
    user = st.user.get("email") or st.user.get("sub") or ""
    return actor(str(user), _admins())


def signed_out() -> bool:
    """Sign-in is configured and nobody is signed in in this session."""
    return configured() and not st.user.is_logged_in


def sign_in_screen() -> None:
    """The sign-in screen instead of any page, then stop."""
    st.title(_("SOART Lab"))
    st.markdown(_("This server is shared by a team: sign in to see and train models."))
    st.button(_("Sign in"), type="primary", on_click=st.login, key="auth_sign_in")
    st.stop()


def sidebar() -> None:
    """Who is signed in, and Sign out (nothing in local mode)."""
    who = current()
    if who is None:
        return
    with st.sidebar:
        role = _(" (admin)") if who.admin else ""
        st.caption(_("Signed in as {user}{role}").format(user=who.user, role=role))
        st.button(_("Sign out"), on_click=st.logout, key="auth_sign_out")
