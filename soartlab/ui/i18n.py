"""The interface language (Japanese or English).

Every user-visible string in ``app.py``, ``pages/`` and ``soartlab/ui/`` goes through
``_()`` so that it can be translated. ``N_()`` marks a string for translation where it is
defined (a module constant) and ``_()`` translates it where it is shown. For text with
values, keep the msgid constant: ``_("Loaded {n} rows").format(n=n)``.

The catalogue is gettext's: ``soartlab/locale/<lang>/LC_MESSAGES/soartlab.po``, kept with
Babel (``make messages`` extracts and updates it). It is compiled in memory from the
``.po`` on first use in a process (Babel's ``read_po``/``write_mo``), so a fresh clone
shows Japanese with no build step and a stale ``.mo`` can never be read.

Which language a session sees, first that applies:

1. ``?lang=ja`` / ``?lang=en`` in the URL;
2. the sidebar switch (kept in session state and written back to the URL, so a refresh
   keeps it);
3. the browser's language (``st.context.locale``): Japanese for ``ja*``;
4. English.

Streamlit runs every session in its own thread, so nothing global is installed
(``gettext.install`` would switch every session at once): ``_()`` looks up the session's
language on each call. Outside a Streamlit script run (the engine, the CLI, unit tests)
``_()`` returns the English text.
"""

from __future__ import annotations

import functools
import gettext
import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

LANGUAGES = {"ja": "日本語", "en": "English"}  # code → its name in itself
DEFAULT_LANGUAGE = "en"
DOMAIN = "soartlab"
LOCALE_DIR = Path(__file__).resolve().parents[1] / "locale"
QUERY_PARAM = "lang"
LANGUAGE_KEY = "soart_language"  # session state: the language the user or URL chose
SWITCH_KEY = "soart_language_switch"  # the sidebar switch's widget key
# The language fixed by `formatter` while its function runs, per thread.
_fixed = threading.local()


def catalogue_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalogue of ``language`` (English: the texts as written), built
    once per process from its ``.po``. Fuzzy and empty entries are left out, so an
    untranslated message shows in English."""
    path = catalogue_path(language)
    if language == DEFAULT_LANGUAGE or not path.exists():
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with path.open("rb") as po:
        catalog = read_po(po, locale=language, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def _in_script_run() -> bool:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    return get_script_run_ctx(suppress_warning=True) is not None


def _valid(language: object) -> str | None:
    text = str(language or "").strip().lower()
    return text if text in LANGUAGES else None


def browser_language() -> str:
    """Japanese when the browser's preferred language is Japanese, else English."""
    import streamlit as st

    locale = str(st.context.locale or "")
    return "ja" if locale.lower().startswith("ja") else DEFAULT_LANGUAGE


def current_language() -> str:
    """The session's interface language (``DEFAULT_LANGUAGE`` outside a script run)."""
    fixed = getattr(_fixed, "language", None)
    if fixed is not None:
        return fixed
    if not _in_script_run():
        return DEFAULT_LANGUAGE
    import streamlit as st

    chosen = _valid(st.query_params.get(QUERY_PARAM)) or _valid(st.session_state.get(LANGUAGE_KEY))
    return chosen or browser_language()


def choose_language() -> str:
    """Called by app.py at the top of every run: take ``?lang=`` into the session, or put
    the session's choice back into the URL (a page switch drops query parameters), so a
    refresh shows the same language. Returns the language of this run."""
    import streamlit as st

    from_url = _valid(st.query_params.get(QUERY_PARAM))
    if from_url:
        st.session_state[LANGUAGE_KEY] = from_url
    else:
        chosen = _valid(st.session_state.get(LANGUAGE_KEY))
        if chosen:
            st.query_params[QUERY_PARAM] = chosen
    return current_language()


def formatter(func: Callable[[Any], str] | None = None) -> Callable[[Any], str]:
    """``func`` (default ``_``) for a widget's ``format_func``, with ``_()`` inside it
    fixed to the language of this run. Streamlit calls ``format_func`` in the script run,
    but its AppTest calls it again from the test's thread, outside any run."""
    language = current_language()
    inner = func or _

    def call(value: Any) -> str:
        previous = getattr(_fixed, "language", None)
        _fixed.language = language
        try:
            return inner(value)
        finally:
            _fixed.language = previous

    return call


def _switched() -> None:
    """The sidebar switch's callback: the new language for this session and its URL."""
    import streamlit as st

    language = _valid(st.session_state.get(SWITCH_KEY))
    if language:
        st.session_state[LANGUAGE_KEY] = language
        st.query_params[QUERY_PARAM] = language


def language_switch(container: object = None) -> None:
    """The language switch (in ``container``, default the sidebar)."""
    import streamlit as st

    st.session_state[SWITCH_KEY] = current_language()
    (container or st.sidebar).segmented_control(
        _("Language"),
        list(LANGUAGES),
        format_func=LANGUAGES.get,
        key=SWITCH_KEY,
        on_change=_switched,
        selection_mode="single",
        width="stretch",
    )


def _(message: str) -> str:
    """The message in the session's interface language."""
    return translations(current_language()).gettext(message)


def N_(message: str) -> str:
    """Mark ``message`` for translation without translating it now."""
    return message


def translated(message: str, language: str) -> str:
    """``message`` in ``language``, wherever it is called from (tests, the CLI)."""
    return translations(language).gettext(message)
