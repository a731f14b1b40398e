"""Small pieces shared by the pages: guards for missing data/runs, the sidebar status, the
row of held-out rates."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import streamlit as st

from soartlab.ui import state
from soartlab.ui.feedback import EngineErrors
from soartlab.ui.i18n import N_, _

# How a run ended, in words (training.Outcome values; "": refused or crashed).
OUTCOME_WORDS = {
    "finished": N_("Finished"),
    "stopped": N_("Stopped"),
    "not_learning": N_("Not learning"),
    "nan_loss": N_("NaN loss"),
    "memorising": N_("Memorising"),
    "good_only": N_("Good parts only, not trained"),
    "": N_("Failed"),
}
# A run's loss (config.LOSSES), in words.
LOSS_NAMES = {"soart3": N_("SOART3"), "euclidean": N_("Euclidean")}


def outcome_words(outcome: str) -> str:
    """A ``training.Outcome`` value in the session's language."""
    return _(OUTCOME_WORDS.get(outcome, outcome))


def loss_name(loss: str | None) -> str:
    """A run's loss ("soart3", "euclidean") in the session's language; "?" when unknown."""
    return _(LOSS_NAMES[loss]) if loss in LOSS_NAMES else (loss or "?")


def require_data() -> state.LoadedData:
    """The session's data; without any, a short hint and a link to the Data page."""
    data = state.loaded_data()
    if data is None:
        st.info(_("No data loaded yet. Load your inspection data (or the demo set) first."))
        st.page_link(state.DATA_PAGE, label=_("Go to the Data page"), icon=":material/folder_open:")
        st.stop()
    return data


def require_run(purpose: str) -> Any:
    """The opened run (``LoadedRun``); without one, a hint and links to Train and Runs."""
    guard = EngineErrors(_("Could not open the current run: "))
    run = None
    with guard:
        run = state.current_run()
    if run is None:
        if not guard.failed:
            st.info(
                _("No trained model yet. Train one (or open a saved run) to {purpose}.").format(
                    purpose=purpose
                )
            )
        st.page_link(
            state.TRAIN_PAGE, label=_("Go to the Train page"), icon=":material/model_training:"
        )
        st.page_link(state.RUNS_PAGE, label=_("Open a saved run"), icon=":material/history:")
        st.stop()
    return run


def run_title(run: Any) -> str:
    """A short name for a loaded run: its label, else its id."""
    label = run.label
    run_dir = run.run_dir
    run_id = run_dir.name if run_dir is not None else _("uploaded model")
    return f"{label} ({run_id})" if label else run_id


def _percent(metrics: Mapping[str, Any], key: str) -> str:
    return f"{metrics.get(key, float('nan')):.1%}"


def rates_row(
    metrics: Mapping[str, Any], *, held_out_samples: bool = False, baselines: Any = None
) -> None:
    """Accuracy, escape and overkill of ``metrics`` (as ``classification_metrics`` gives
    them) in one row, with the number of samples scored when ``held_out_samples``.
    ``baselines`` (a run's ``training.Baselines``, same held-out parts and kNN rule): what
    training added over the untrained network, and the accuracy of kNN on raw features.

    A wrapping horizontal container of content-wide metrics rather than columns: where the
    row is narrow (one of four runs side by side on the Runs page) the metrics move to a
    second line instead of being squeezed until their values are cut off.
    """
    accuracy = metrics.get("accuracy")
    added, arrow, colour = None, "auto", "normal"
    if baselines is not None and accuracy is not None:
        points = round(100 * (accuracy - baselines.untrained), 1)
        # the number first: Streamlit draws the arrow and colour from its sign (a
        # translation that put words first drew a green ↑ for a loss); none for 0.0
        added = _("{points:+.1f} pts over the untrained network").format(points=points)
        if points == 0:
            arrow, colour = "off", "off"
    with st.container(horizontal=True, gap="large"):
        st.metric(
            _("Accuracy"),
            _percent(metrics, "accuracy"),
            delta=added,
            delta_arrow=arrow,
            delta_color=colour,
            help=_("Share of samples whose predicted class is their true class."),
            width="content",
        )
        st.metric(
            _("Escape"),
            _percent(metrics, "escape_rate"),
            help=_("見逃し (escape): defects judged good, as a share of the defective samples."),
            width="content",
        )
        st.metric(
            _("Overkill"),
            _percent(metrics, "overkill_rate"),
            help=_(
                "過検出 (overkill): good parts judged defective, as a share of the good samples."
            ),
            width="content",
        )
        if baselines is not None:
            st.metric(
                _("Untrained network"),
                f"{baselines.untrained:.1%}",
                help=_(
                    "Held-out accuracy of the network before this training (same parts, "
                    "same nearest-neighbour rule): what training is measured against."
                ),
                width="content",
            )
            st.metric(
                _("kNN on raw features"),
                f"{baselines.raw_knn:.1%}",
                help=_(
                    "Held-out accuracy of nearest neighbours (Euclidean) on the "
                    "normalised raw features, without any network (same parts, same k)."
                ),
                width="content",
            )
        if held_out_samples:
            st.metric(_("Held-out samples"), f"{metrics.get('n_samples', 0):,}", width="content")


def session_status() -> dict[str, str | None]:
    """Where the session stands, as short strings (None: not there yet)."""
    data = state.loaded_data()
    tuned = state.tuned_transform()
    job = st.session_state.get(state.TRAIN_JOB)
    run_dir = state.current_run_dir()
    status: dict[str, str | None] = {
        "data": None,
        "transform": None,
        "model": None,
        "training": None,
    }
    if data is not None:
        status["data"] = _("{name}: {n:,} samples, good class '{good}'").format(
            name=state.data_title(data), n=len(data.dataset), good=data.good_class
        )
    if tuned is not None:
        t = tuned.transform
        status["transform"] = _("scale {scale:.3g}, offset {offset:.3g}, floor {floor:.3g}").format(
            scale=t.scale, offset=t.offset, floor=t.floor
        )
    if run_dir is not None:
        status["model"] = run_name(run_dir)
    if job is not None and job.is_running():
        status["training"] = job.summary()
    return status


def run_name(run_dir: Path) -> str:
    """A saved run's label and id (as `run_title`), read from its record once per
    version of it; the id alone when the record cannot be read."""
    try:
        stamp = (run_dir / "run.json").stat().st_mtime_ns
    except OSError:
        return run_dir.name
    return _label_and_id(str(run_dir), stamp)


@functools.lru_cache(maxsize=64)
def _label_and_id(path: str, stamp: int) -> str:
    from soartlab.errors import SoartLabError
    from soartlab.runs import Run, RunInfo

    try:
        info = RunInfo.of(Run(path))
    except SoartLabError:
        return Path(path).name
    return f"{info.label} ({info.run_id})" if info.label else info.run_id


def sidebar_status(place: Any = None) -> None:
    """The session's data, tuned transform, model and training job, in ``place`` (default
    the sidebar)."""
    status = session_status()
    with place if place is not None else st.sidebar:
        st.caption(_("This session"))
        st.markdown("**" + _("Data") + "** · " + (status["data"] or _("none")))
        transform = status["transform"] or _("not tuned: decided at Start")
        st.markdown("**" + _("Tuned transform") + "** · " + transform)
        st.markdown("**" + _("Model") + "** · " + (status["model"] or _("none opened")))
        if status["training"]:
            st.markdown("**" + _("Training") + "** · " + status["training"])
