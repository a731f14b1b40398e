"""Turning engine errors into messages on the page, in the session's language
(``engine_message``: see ``soartlab.ui.error_messages``)."""

from __future__ import annotations

from types import TracebackType

import streamlit as st

from soartlab.errors import SoartLabError
from soartlab.ui.error_messages import engine_message

__all__ = ["EngineErrors", "engine_message"]


class EngineErrors:
    """Context manager: a ``SoartLabError`` raised inside becomes ``st.error``.

    The rest of the block is skipped; ``failed`` tells the caller whether it was::

        guard = EngineErrors()
        with guard:
            dataset = load_dataset(path)
        if guard.failed:
            ...
    """

    def __init__(self, prefix: str = "", *, show: bool = True) -> None:
        self.prefix = prefix
        self.show = show
        self.failed = False
        self.message = ""

    def __enter__(self) -> EngineErrors:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None or not isinstance(exc, SoartLabError):
            # Anything else (including Streamlit's rerun/stop signals) propagates.
            return False
        self.failed = True
        self.message = f"{self.prefix}{engine_message(str(exc))}"
        if self.show:
            st.error(self.message)
        return True
