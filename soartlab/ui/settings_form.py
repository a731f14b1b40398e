"""The Train page's inputs, made from the declared training settings (`soartlab.config`),
so that the page offers the same defaults and ranges as the CLI and `TrainConfig`."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from soartlab.config import Setting, train_setting
from soartlab.ui import state
from soartlab.ui.i18n import _, formatter


def widget_key(setting: Setting) -> str:
    """The session-state key of the setting's input (persisted across page switches)."""
    return f"train_{setting.name}"


def _number_format(step: float) -> str:
    """Enough decimals to show one step and one more digit: step 1e-4 → "%.5f"."""
    return f"%.{max(0, -math.floor(math.log10(step))) + 1}f"


def setting_input(
    name: str,
    container: Any,
    *,
    options: Sequence[str] | None = None,
    format_func: Callable[[str], str] | None = None,
    radio: bool = False,
    multi: Sequence[str] | None = None,
    empty: str = "none",
) -> Any:
    """Draw the input for TrainConfig's setting `name` in `container` (a column, the
    sidebar, `st`) and return its value, of the setting's type.

    Numbers get a number_input with the declared bounds, step and help (an open bound is
    still offered; `TrainConfig.validate` refuses the bound itself); choices a selectbox,
    or a radio when `radio`, over `options` (default: all declared choices) shown through
    `format_func` (default: the choice itself, translated); a text setting that is a comma
    list, a multiselect over the words `multi` (its value: the words picked, joined by
    commas, or `empty`). Labels and help are shown in the session's language
    (`soartlab.ui.catalogue` extracts them from the settings).
    """
    setting = train_setting(name)
    if multi is not None:
        # a comma list setting (augment): one multiselect over its words; none picked is
        # `empty`, and the value is the words joined by commas
        key = state.persisted(widget_key(setting), setting.default.split(","))
        picked = container.multiselect(
            _(setting.label), list(multi), format_func=format_func, key=key, help=_(setting.help)
        )
        return ",".join(picked) or empty
    key = state.persisted(widget_key(setting), setting.default)
    if setting.choices:
        widget = container.radio if radio else container.selectbox
        return widget(
            _(setting.label),
            list(options or setting.choices),
            format_func=formatter(format_func or (lambda choice: _(str(choice)))),
            key=key,
            help=_(setting.help),
        )
    if setting.kind is int:
        return container.number_input(
            _(setting.label),
            min_value=int(setting.low),
            max_value=int(setting.high),
            step=int(setting.step),
            key=key,
            help=_(setting.help),
        )
    return container.number_input(
        _(setting.label),
        min_value=float(setting.low),
        max_value=float(setting.high),
        step=float(setting.step),
        format=_number_format(setting.step),
        key=key,
        help=_(setting.help),
    )
