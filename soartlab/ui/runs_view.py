"""Tables and the side-by-side comparison of the Runs page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from soartlab.ui.i18n import _
from soartlab.ui.widgets import loss_name, outcome_words, rates_row


def describe(info: Any) -> str:
    """'label (run id, loss)' for selectboxes."""
    name = info.label or info.run_id
    details = info.run_id if info.label else ""
    if info.loss:
        loss = loss_name(info.loss)
        details = f"{details}, {loss}" if details else loss
    return f"{name} ({details})" if details else name


def local_time(created: str) -> str:
    """A run's creation time in the browser's time zone ("2026-11-30 17:05"), or as
    stored when the browser did not say its zone or the text is not a time."""
    from datetime import datetime
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        moment = datetime.fromisoformat(created)
        zone = st.context.timezone
        if zone:
            moment = moment.astimezone(ZoneInfo(zone))
    except (TypeError, ValueError, ZoneInfoNotFoundError):
        return created
    return moment.strftime("%Y-%m-%d %H:%M")


def runs_table(infos: list[Any], current: Path | None, *, owners: bool = False) -> Any:
    """The runs as a table; ``owners``: with a column of who trained each (sign-in on)."""
    import pandas as pd

    rows = []
    for info in infos:
        metrics = info.metrics or {}
        rows.append(
            {
                _("current"): "●" if current is not None and current.name == info.run_id else "",
                _("name"): info.label,
                **({_("owner"): info.owner or "–"} if owners else {}),
                _("run id"): info.run_id,
                _("created"): local_time(info.created),
                _("loss"): loss_name(info.loss) if info.loss else "",
                _("status"): outcome_words(info.status) if info.status else "",
                _("accuracy"): metrics.get("accuracy"),
                _("escape"): metrics.get("escape_rate"),
                _("overkill"): metrics.get("overkill_rate"),
            }
        )
    table = pd.DataFrame(rows)
    rates = (_("accuracy"), _("escape"), _("overkill"))
    return table.style.format({c: "{:.1%}" for c in rates}, na_rep="–")


def compare(infos: list[Any]) -> None:
    """Saved metrics and training curves of up to four runs, side by side."""
    from soartlab.plots import training_curves

    columns = st.columns(max(len(infos), 2))
    for column, info in zip(columns, infos, strict=False):
        with column:
            st.markdown(f"**{describe(info)}**")
            rates_row(info.metrics or {}, baselines=info.baselines)
            figure = training_curves(list(info.history), translate=_)
            figure.update_layout(height=300, margin={"t": 40, "b": 20}, showlegend=False)
            st.plotly_chart(figure, key=f"runs_curves_{info.run_id}", width="stretch")
