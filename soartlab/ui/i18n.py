"""The interface language (Japanese or English).

Every user-visible string in ``app.py``, ``pages/`` and ``soartlab/ui/`` goes through
``_()`` so that it can be translated. ``N_()`` marks a string for translation where it is
defined (a module constant) and ``_()`` translates it where it is shown.
"""

from __future__ import annotations


def _(message: str) -> str:
    """The message in the session's interface language."""
    return message


def N_(message: str) -> str:
    """Mark ``message`` for translation without translating it now."""
    return message
