"""The operating point on the Train and Explore pages: the escape–overkill curve, a
target slider that re-scores the held-out parts from the run's cached scores (no
embedding), the figures with their 95 % upper bounds, and saving the point into the run.
The Predict page's lot check and decision counts are here too."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from soartlab.ui.feedback import engine_message
from soartlab.ui.i18n import _

TARGET_MAX_PERCENT = 20.0  # the slider's range: 0 to 20 % escapes
TARGET_STEP_PERCENT = 0.1


def _rate(rate: float | None, bound: float | None) -> str:
    if rate is None:
        return _("not measured")
    return _("{rate} (≤ {bound})").format(rate=f"{rate:.2%}", bound=f"{bound:.2%}")


def figures_row(figures: Any) -> None:
    """Escape and overkill with their 95 % upper bounds, and the review share."""
    with st.container(horizontal=True, gap="large"):
        st.metric(
            _("Escape"),
            _rate(figures.escape_rate, figures.escape_upper_95),
            help=_(
                "見逃し: defects passed, as a share of the defects; in brackets the exact "
                "binomial 95 % upper bound. {n} defects scored."
            ).format(n=figures.n_defective),
            width="content",
        )
        st.metric(
            _("Overkill"),
            _rate(figures.overkill_rate, figures.overkill_upper_95),
            help=_(
                "過検出: good parts failed, as a share of the good parts (a review is not "
                "an overkill); in brackets the 95 % upper bound. {n} good parts scored."
            ).format(n=figures.n_good),
            width="content",
        )
        st.metric(
            _("Review"),
            f"{figures.review_rate:.1%}",
            help=_("Share of parts sent to a person: neither passed nor failed."),
            width="content",
        )


def per_type_table(figures: Any) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                _("defect type"): row["type"],
                _("parts"): row["count"],
                _("escapes"): row["escapes"],
                _("reviewed"): row["reviewed"],
                _("recall"): f"{row['recall']:.1%}",
                _("escape ≤ (95 %)"): f"{row['escape_upper_95']:.1%}",
            }
            for row in figures.per_type
        ]
    )


def operating_point_panel(run: Any, key: str) -> None:
    """The run's operating point (see module docstring); ``key`` keeps two pages'
    widgets apart."""
    from soartlab.decision import NO_ESCAPE_RATE

    block = run.record.decision
    calibration = run.calibration
    st.subheader(_("Operating point: pass, review, fail"))
    if block is None or calibration is None:
        st.info(
            _(
                "This run was saved before runs kept an operating point; its parts are "
                "judged by the nearest class. Train it again for pass/review/fail decisions."
            )
        )
        return
    if calibration.good_loo is not None:
        st.info(_(NO_ESCAPE_RATE))
        t = block["thresholds"]
        st.caption(
            _(
                "Pass up to distance {p} (the {pct:g}th percentile of the good parts' own "
                "nearest-good distances), review up to {f}, beyond: fail (unknown). "
                "Overkill on {n} held-out good parts: {o}; review {r}."
            ).format(
                p=f"{t['pass_below']:.4g}",
                pct=block["operating_point"]["percentile"],
                f=f"{t['fail_above']:.4g}",
                n=block["n_reported"],
                o=_rate(block["overkill_rate"], block["overkill_upper_95"]),
                r=f"{(block['review_rate'] or 0):.1%}",
            )
        )
        return
    if calibration.held_out is None:
        st.info(_("Too few held-out parts to calibrate an operating point."))
        return
    _tuning(run, key)


@st.fragment
def _tuning(run: Any, key: str) -> None:
    from soartlab.decision import escape_overkill_curve, rescore
    from soartlab.plots import escape_overkill_curve as curve_figure
    from soartlab.workflow import save_operating_point

    held_out = run.calibration.held_out
    saved = run.record.decision.get("target")
    saved = 0.5 if saved is None else round(100 * saved, 1)
    target = st.slider(
        _("Target escape rate (%)"),
        min_value=0.0,
        max_value=TARGET_MAX_PERCENT,
        value=min(saved, TARGET_MAX_PERCENT),
        step=TARGET_STEP_PERCENT,
        format="%.1f",
        key=f"{key}_target_escape",
        help=_(
            "The most defects that may pass, set on half of the held-out parts "
            "(calibration); the figures below are measured on the other half."
        ),
    )
    point, figures = rescore(held_out, run.label_names, target / 100)
    figures_row(figures)
    escape, overkill = escape_overkill_curve(held_out)[1:]
    left, right = st.columns([3, 2])
    with left:
        figure = curve_figure(
            escape,
            overkill,
            point=(figures.escape_rate or 0.0, figures.overkill_rate or 0.0),
            translate=_,
        )
        figure.update_layout(height=340)
        st.plotly_chart(figure, key=f"{key}_curve", width="stretch")
    with right:
        st.caption(
            _(
                "Score: distance to the nearest good reference. Pass ≤ {p} < review ≤ {f} "
                "< fail; farther than {u} from every reference: fail (unknown). Threshold "
                "set on {c} calibration parts, figures on {r} other held-out parts."
            ).format(
                p=f"{point.pass_below:.4g}",
                f=f"{point.fail_above:.4g}",
                u=f"{point.unknown_above:.4g}",
                c=int(held_out.calibration.sum()),
                r=figures.n_parts,
            )
        )
    # below the curve, at the page's width: six columns beside it were cut off at the right
    st.dataframe(per_type_table(figures), hide_index=True, width="stretch")
    saved_target = run.record.decision.get("target")
    changed = saved_target is None or abs(100 * saved_target - target) > 1e-9
    if st.button(
        _("Save this operating point into the run"),
        key=f"{key}_save",
        disabled=run.run is None or not changed,
        help=_("Predict then decides by it; run.json records its thresholds and figures."),
    ):
        save_operating_point(run, target / 100)
        st.success(_("Saved: target escape {t} %.").format(t=f"{target:.1f}"))


def _feature_words(drift: Any) -> str:
    """A drifted feature (`lotcheck.FeatureDrift`) in the session's language: a pixel's
    or a numbered feature's words; a column name as written."""
    if drift.column is not None:
        return drift.column
    if drift.pixel is not None:
        return _("pixel {where}").format(where=f"({drift.pixel[0]}, {drift.pixel[1]})")
    return _("feature {i}").format(i=drift.index)


def lot_check(check: Any) -> None:
    """The lot check on Predict: parts sent to review by it, and the drift report."""
    from soartlab.lotcheck import DRIFT_SD

    st.markdown("**" + _("Lot check") + "**")
    lines = [
        _(
            "{n} of {total} parts sent to review by the lot check; typical part spread "
            "{lot:.4g} (training {train:.4g})."
        ).format(
            n=check.n_flagged,
            total=len(check.reasons),
            lot=check.lot_spread,
            train=check.train_spread,
        )
    ]
    if check.drift:
        lines.append(
            _(
                "Drift: {n} of {total} features moved by more than {sd:g} training SD "
                "(the largest first, below)."
            ).format(n=len(check.drift), total=check.n_features, sd=DRIFT_SD)
        )
    else:
        lines.append(
            _("Drift: no feature's mean moved by more than {sd:g} training SD.").format(sd=DRIFT_SD)
        )
    lines.extend(engine_message(note) for note in check.notes)
    st.caption("  \n".join(lines))
    if check.drift:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        _("feature"): _feature_words(d),
                        _("shift (training SD)"): round(d.shift_sd, 2),
                        _("lot mean"): round(d.lot_mean, 4),
                        _("training mean"): round(d.train_mean, 4),
                        _("share out of range"): f"{d.out_of_range:.1%}",
                    }
                    for d in check.drift[:50]
                ]
            ),
            hide_index=True,
            width="stretch",
            height=200,
        )
