"""The Tune page's live part: the distances the loss will see, the loss's view of the
sliders' setting, and Preview.

Pair distances depend on the data, the embedding source, the distance and the number
of pairs; they are computed once per combination and kept in session state. The
sliders, the histograms and the loss's view sit in one ``@st.fragment``: a slider move
reruns only the fragment, which applies the transform to the cached distances and asks
``soartlab.tuning.loss_view`` which pairs the loss would pull and push. The sliders are
the live component (``tune_live``: histograms redrawn in the browser while dragging) or,
with "Live in the browser" off, ``st.slider`` and a server-drawn Plotly figure.

Sources: the network the Train page would train now (the initial network for its seed,
or the run "Next round" continues), the current run's model, and the raw features as a
reference. The Train page's settings (seed, margin, learning rate...) are read from its
persisted inputs, so Tune looks at what Train will do.
"""

from __future__ import annotations

import functools
import math
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st

from soartlab.errors import SoartLabError
from soartlab.transform import ARTICLE_TRANSFORM, GammaTransform
from soartlab.ui import state, tune_live
from soartlab.ui.feedback import EngineErrors, engine_message
from soartlab.ui.i18n import N_, _, current_language
from soartlab.ui.preview_job import PreviewJob, PreviewSnapshot
from soartlab.ui.widgets import outcome_words

if TYPE_CHECKING:
    from soartlab.config import TrainConfig
    from soartlab.prepare import PreparedData
    from soartlab.separation import SeparationReport
    from soartlab.tuning import LossView

# Option values (persisted in session state): shown through _(), never compared translated.
SOURCE_NETWORK = N_("Network to be trained")
SOURCE_MODEL = N_("Current model's embeddings")
SOURCE_RAW = N_("Raw features")

# Shown name → engine name (soartlab.distances.get_distance).
DISTANCES = {
    N_("SOART3 gamma"): "soart3",
    N_("SOART3 yita"): "soart3_yita",
    N_("SOART3 beta"): "soart3_beta",
    N_("Euclidean"): "euclidean",
    N_("Minkowski-p"): "minkowski",
    N_("Chebyshev"): "chebyshev",
    N_("Cosine"): "cosine",
}
LOSS_DISTANCE = "SOART3 gamma"  # the distance the SOART3 loss applies the transform to
DEFAULT_PAIRS = 2000

SCALE_KEY = "tune_scale"
OFFSET_KEY = "tune_offset"
FLOOR_KEY = "tune_floor"
VALUE_KEYS = {"scale": SCALE_KEY, "offset": OFFSET_KEY, "floor": FLOOR_KEY}
LIVE_KEY = "tune_live_mode"
PREVIEW_JOB = "tune_preview_job"
PREVIEW_FOLLOW_KEY = "tune_preview_follow"
PREVIEW_STEPS_KEY = "tune_preview_steps"
RERUN_APP = "tune_rerun_app"  # set by a callback in the fragment that changes the sidebar
PREVIEW_FINISHED = "tune_preview_finished"  # job_id of the preview whose end was taken in
DEFAULT_PREVIEW_STEPS = 300
PREVIEW_POLL_SECONDS = 0.5
# Size of the server-drawn before/after histograms (bench/bench_slider.py uses it too).
HISTOGRAM_LAYOUT = {"height": 380, "margin": {"t": 60, "b": 40}}

EXPLANATION = N_(
    "**What the sliders change.** The transform d = max(scale·gamma + offset, floor) is "
    "increasing: it keeps the order of the pair distances, so scale and offset cannot "
    "change ROC AUC or how much matched and unmatched pairs overlap — only training can. "
    "What they change is which pairs the contrastive loss learns from: matched pairs "
    "above the floor are **pulled in**, unmatched pairs between the floor and the margin "
    "are **pushed out**; a pair on the floor, or an unmatched pair beyond the margin, "
    "teaches nothing. The orders of v and m change gamma itself, so they can change the "
    "separation. **Preview** trains a copy of the network for a few hundred steps with "
    "the sliders' values and shows the separation it leads to."
)


# --- what Train will do --------------------------------------------------------------------


def _train_setting(name: str) -> Any:
    """The Train page's value of setting ``name``: its input's, else its remembered
    value (the page may not have been opened in this session), else the default."""
    from soartlab.config import train_setting
    from soartlab.ui.settings_form import widget_key

    setting = train_setting(name)
    key = widget_key(setting)
    return st.session_state.get(
        key, st.session_state.get(state.SHADOW_PREFIX + key, setting.default)
    )


# The Train page's inputs (pages/train.py); the other settings keep TrainConfig's defaults.
TRAIN_PAGE_SETTINGS = ("margin", "epochs", "pairs_per_epoch", "batch_size", "lr", "seed", "device")


def planned_config(transform: GammaTransform, p_v: float, p_m: float) -> TrainConfig:
    """The SOART3 ``TrainConfig`` the Train page would start with, with these transform
    values and orders (validated; raises ``SoartLabError`` naming a bad value)."""
    from soartlab.config import TrainConfig

    data = state.loaded_data()
    settings = {name: _train_setting(name) for name in TRAIN_PAGE_SETTINGS}
    config = TrainConfig(
        **settings,
        loss="soart3",
        transform=transform,
        p_v=float(p_v),
        p_m=float(p_m),
        good_class=data.good_class if data else None,
    )
    config.validate()
    return config


def prepared(config: TrainConfig) -> PreparedData:
    """The session's data split as training will split it, once per setting."""
    from soartlab.prepare import prepare

    data = state.loaded_data()
    if data is None:
        raise SoartLabError(_("No data loaded."))
    key = (data.version, config.test_size, config.seed, config.good_class)
    return state.cached(
        "tune_prepared",
        key,
        lambda: prepare(data.dataset, config.test_size, config.seed, config.good_class),
    )


def _resume_dir() -> str | None:
    return st.session_state.get(state.RESUME_FROM) or None


def network_key(config: TrainConfig) -> tuple:
    """What the network to be trained depends on (a cache and Preview key)."""
    data = state.loaded_data()
    return (
        data.version if data else 0,
        config.seed,
        config.test_size,
        tuple(config.hidden),
        config.embedding_dim,
        _resume_dir(),
    )


def network_to_train(config: TrainConfig) -> tuple[Any, str]:
    """``(SiameseNet, description)``: the network Train would start from with ``config`` —
    the run "Next round" continues, else a fresh one initialised with ``config.seed``."""
    from soartlab.training import initial_model

    resume = _resume_dir()

    def build() -> Any:
        warm = None
        if resume is not None:
            run = state.current_run()
            if run is None or str(run.run_dir) != resume:
                from soartlab.workflow import load_run

                run = load_run(resume)
            warm = run.model
        return initial_model(config, prepared(config), warm_start=warm)

    model = state.cached("tune_network", network_key(config), build)
    if resume is not None:
        return model, _("run {run}, which Next round continues").format(run=Path(resume).name)
    return model, _("the untrained network for seed {seed}").format(seed=config.seed)


# --- pair distances ------------------------------------------------------------------------


@dataclass(frozen=True)
class PairSample:
    """Raw (untransformed) distances of sampled matched / unmatched pairs.

    What depends only on the raw distances is computed on first use and kept with the
    sample, so a slider move does not redo it.
    """

    matched: np.ndarray  # (Nm,)
    unmatched: np.ndarray  # (Nu,)
    distance_label: str
    source: str  # what they were computed on, in words

    @functools.cached_property
    def raw_report(self) -> SeparationReport:
        """Separation of the raw distances (scale and offset do not change it)."""
        from soartlab.separation import separation_report

        return separation_report(self.matched, self.unmatched)

    @functools.cached_property
    def span(self) -> float:
        """A round number covering the raw distances, for the offset / floor slider ranges."""
        values = np.concatenate([self.matched, self.unmatched])
        values = values[np.isfinite(values)]
        top = float(np.percentile(np.abs(values), 99)) if values.size else 1.0
        top = max(top, 1.0)
        magnitude = 10 ** math.floor(math.log10(top))
        return math.ceil(top / magnitude) * magnitude

    @functools.cached_property
    def fine(self) -> tune_live.FineBins:
        """The fine bins the live component re-bins in the browser."""
        return tune_live.FineBins.of(self.matched, self.unmatched)


def distance_params(engine_name: str, p_v: float, p_m: float, p: float) -> dict[str, Any]:
    """Keyword arguments for ``get_distance`` (distances are raw; the sliders' transform
    is applied to the sampled distances)."""
    if engine_name.startswith("soart3"):
        return {"p_v": p_v, "p_m": p_m}
    if engine_name == "minkowski":
        return {"p": p}
    return {}


def _source_model(source: str, config: TrainConfig) -> tuple[Any, str]:
    """``(model or None, description)`` of an embedding source; None: raw features."""
    if source == SOURCE_NETWORK:
        return network_to_train(config)
    if source == SOURCE_MODEL:
        run = state.current_run()
        if run is None:
            raise SoartLabError(_("No trained model yet: train one, or choose another source."))
        name = Path(run.run_dir or "").name or _("upload")
        return run.model, _("the current model (run {run})").format(run=name)
    return None, _("raw features (normalised as the network normalises them)")


def pair_sample(
    source: str, n_pairs: int, distance_label: str, p_v: float, p_m: float, p: float
) -> PairSample:
    """Distances of ``n_pairs`` pairs sampled from the training split, on ``source``,
    computed once per setting in this session. SOART3 gamma is taken as the loss takes
    it (``tuning.pair_gammas``); other distances on the same points, for comparison."""
    from soartlab import tuning
    from soartlab.data import Normalization
    from soartlab.distances import get_distance
    from soartlab.evaluation import embed, pair_distances

    config = planned_config(ARTICLE_TRANSFORM, p_v, p_m)
    engine_name = DISTANCES[distance_label]
    params = distance_params(engine_name, p_v, p_m, p)
    key = (
        network_key(config),
        str(state.current_run_dir()) if source == SOURCE_MODEL else "",
        source,
        int(n_pairs),
        engine_name,
        tuple(sorted((k, str(v)) for k, v in params.items())),
        current_language(),  # the sample's description is in words
    )

    def compute() -> PairSample:
        split = prepared(config)
        model, description = _source_model(source, config)
        X, y = split.x_train, split.y_train
        # The raw reference is normalised as the network normalises its inputs.
        norm = None if model is not None else Normalization.fit(X, per_feature=not split.is_image)
        if engine_name == "soart3":
            pairs = tuning.pair_gammas(
                X, y, model=model, n_pairs=int(n_pairs), seed=config.seed,
                p_v=p_v, p_m=p_m, normalization=norm, source=description,
            )  # fmt: skip
            matched, unmatched = pairs.matched, pairs.unmatched
        else:
            flat = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
            points = embed(model, flat) if model is not None else norm.apply(flat)
            distance = get_distance(engine_name, **params)
            matched, unmatched = pair_distances(points, y, int(n_pairs), distance, config.seed)
        return PairSample(
            np.asarray(matched, dtype=np.float64),
            np.asarray(unmatched, dtype=np.float64),
            distance_label,
            description,
        )

    return state.cached("tune_pairs", key, compute)


# --- the sliders' values -------------------------------------------------------------------


def current_values() -> dict[str, float]:
    """scale, offset and floor as the sliders hold them (the article's at first)."""
    defaults = ARTICLE_TRANSFORM.to_dict()
    return {
        name: float(st.session_state[state.persisted(key, defaults[name])])
        for name, key in VALUE_KEYS.items()
    }


def start_from_suggestion(sample: PairSample, source: str) -> None:
    """On the first look at the network to be trained, start the sliders at what the Train
    page trains with when nothing is stored (``tuning.default_transform``: the article's
    values when the loss learns from them, else Suggest's), so the page opens on a
    setting that learns."""
    untouched = not any(
        key in st.session_state or state.SHADOW_PREFIX + key in st.session_state
        for key in VALUE_KEYS.values()
    )
    if untouched and source == SOURCE_NETWORK and sample.distance_label == LOSS_DISTANCE:
        from soartlab.tuning import default_transform

        margin = float(_train_setting("margin"))
        floor = ARTICLE_TRANSFORM.floor
        transform, _ = default_transform(sample.matched, sample.unmatched, margin, floor)
        store_values(transform.to_dict())


def _article_values() -> None:
    """Button callback: the article's transform, by name."""
    store_values(ARTICLE_TRANSFORM.to_dict())


def store_values(values: dict[str, float]) -> None:
    """Set the sliders' values (from a callback, before the sliders draw)."""
    for name, key in VALUE_KEYS.items():
        state.remember(key, float(values[name]))


def slider_ranges(span: float, values: dict[str, float]) -> dict[str, tuple[float, float, float]]:
    """(low, high, step) per slider: scale over [0, 5], offset and floor over ±``span``,
    each widened to hold its value (a suggested or typed one may lie outside)."""
    defaults = {"scale": (0.0, 5.0), "offset": (-span, span), "floor": (-span, span)}
    ranges = {}
    for name, (low, high) in defaults.items():
        low, high = min(low, math.floor(values[name])), max(high, math.ceil(values[name]))
        ranges[name] = (float(low), float(high), (high - low) / 400)
    return ranges


def _suggest(sample: PairSample, margin: float) -> None:
    """Button callback: the engine's suggestion for these distances, into the sliders."""
    from soartlab.tuning import suggest_transform_for_loss

    try:
        floor = float(st.session_state[FLOOR_KEY])
        suggestion = suggest_transform_for_loss(
            sample.matched, sample.unmatched, margin=margin, floor=floor
        )
    except SoartLabError as exc:
        st.session_state["tune_suggest_error"] = engine_message(str(exc))
        return
    store_values(suggestion.to_dict())


def _use_for_training(p_v: float, p_m: float) -> None:
    try:
        transform = GammaTransform(**current_values())
    except SoartLabError as exc:
        st.session_state["tune_suggest_error"] = engine_message(str(exc))
        return
    state.set_tuned_transform(state.TunedTransform(transform, p_v=p_v, p_m=p_m))
    # The button sits in a fragment: rerun the whole app so the sidebar shows the values.
    st.session_state[RERUN_APP] = True


# --- the panel -----------------------------------------------------------------------------


def _server_sliders(span: float, values: dict[str, float]) -> dict[str, float]:
    """``st.slider`` for each value (the path AppTest drives); returns their values."""
    ranges = slider_ranges(span, values)
    helps = {
        "scale": _("Slope applied to the raw distance."),
        "offset": _("Shift after scaling."),
        "floor": _("Smallest distance returned."),
    }
    titles = {"scale": _("Scale"), "offset": _("Offset"), "floor": _("Floor")}
    chosen = {}
    for name, key in VALUE_KEYS.items():
        low, high, step = ranges[name]
        chosen[name] = st.slider(
            titles[name],
            min_value=low,
            max_value=high,
            step=step,
            key=key,
            help=helps[name],
        )
    return chosen


def _server_figure(sample: PairSample, transform: GammaTransform, margin: float | None) -> None:
    from soartlab.plots import before_after_histograms

    figure = before_after_histograms(
        sample.matched,
        sample.unmatched,
        transform(sample.matched),
        transform(sample.unmatched),
        # An increasing transform keeps the best threshold's pairs: map the raw one.
        threshold=float(transform(np.array([sample.raw_report.threshold]))[0]),
        floor=transform.floor,
        margin=margin,
        translate=_,
    )
    figure.update_layout(HISTOGRAM_LAYOUT)
    st.plotly_chart(figure, key="tune_histograms", width="stretch")


def loss_view_row(view: LossView) -> None:
    """The loss's view as three figures, and a warning when nothing would be learnt."""
    cols = st.columns(3)
    cols[0].metric(
        _("Pulled in"),
        f"{view.pulled:.1%}",
        help=_(
            "Matched pairs above the floor: the loss pulls them together ({n:,} matched pairs)."
        ).format(n=view.n_matched),
    )
    cols[1].metric(
        _("Pushed out"),
        f"{view.pushed:.1%}",
        help=_(
            "Unmatched pairs between the floor and the margin: the loss pushes them apart "
            "({n:,} unmatched pairs)."
        ).format(n=view.n_unmatched),
    )
    cols[2].metric(
        _("Loss now"),
        f"{view.loss:.4f}",
        help=_("Mean contrastive loss of these pairs under this setting, before training."),
    )
    if not view.learns:
        st.warning(engine_message(view.problem), icon=":material/warning:")


def separation_row(report: SeparationReport) -> None:
    cols = st.columns(4)
    cols[0].metric("ROC AUC", f"{report.roc_auc:.3f}")
    cols[1].metric(_("Overlap"), f"{report.overlap:.1%}")
    cols[2].metric(
        _("Escape"),
        f"{report.escape_rate:.1%}",
        help=_("Unmatched pairs called matched at the best threshold"),
    )
    cols[3].metric(
        _("Overkill"),
        f"{report.overkill_rate:.1%}",
        help=_("Matched pairs called unmatched at the best threshold"),
    )


@st.fragment
def tuning_panel(sample: PairSample, p_v: float, p_m: float, *, live: bool) -> None:
    """Sliders, histograms, the loss's view and the separation figures, as one fragment."""
    is_loss_distance = sample.distance_label == LOSS_DISTANCE
    margin = float(_train_setting("margin"))
    values = current_values()
    if live:
        tune_live.live_sliders(
            sample.fine,
            values,
            slider_ranges(sample.span, values),
            margin=margin if is_loss_distance else None,
            titles=(_("before tune"), _("after tune")),
            on_change=store_values,
            texts={
                "scale": _("Scale"),
                "offset": _("Offset"),
                "floor": _("Floor"),
                "matched": _("Matched"),
                "unmatched": _("Unmatched"),
                "distance": _("distance"),
                "fraction": _("fraction of pairs"),
                "margin": _("margin"),
            },
        )
        figure_area = st.container()
    else:
        left, figure_area = st.columns([1, 3])
        with left:
            values = _server_sliders(sample.span, values)
    guard = EngineErrors()
    with guard:
        transform = GammaTransform(**values)
    if guard.failed:
        return
    if not live:
        with figure_area:
            _server_figure(sample, transform, margin if is_loss_distance else None)
    if is_loss_distance:
        from soartlab.tuning import loss_view

        with guard:
            loss_view_row(loss_view(sample.matched, sample.unmatched, transform, margin))
    cols = st.columns(3)
    cols[2].button(
        _("Article's values"),
        on_click=_article_values,
        help=_("The seed article's transform: scale 0.5, offset -0.25, floor 0."),
        width="stretch",
    )
    cols[0].button(
        _("Suggest"),
        on_click=_suggest,
        args=(sample, margin),
        disabled=not is_loss_distance,
        help=_(
            "Scale and offset under which the loss learns from these pairs, matched and "
            "unmatched alike — what the Train page uses when nothing is stored."
        ),
        width="stretch",
    )
    cols[1].button(
        _("Use for training"),
        type="primary",
        on_click=_use_for_training,
        args=(p_v, p_m),
        disabled=not is_loss_distance,
        help=_("Store these values; the Train page's SOART3 loss uses them."),
        width="stretch",
    )
    message = st.session_state.pop("tune_suggest_error", None)
    if message:
        st.error(message)
    if st.session_state.pop(RERUN_APP, False):
        st.rerun(scope="app")
    tuned = state.tuned_transform()
    if tuned is not None and (tuned.transform, tuned.p_v, tuned.p_m) == (transform, p_v, p_m):
        st.success(_("Stored for training."))
    st.caption(
        _("Separation of {distance} on {source} (scale and offset do not change it):").format(
            distance=_(sample.distance_label), source=sample.source
        )
    )
    separation_row(sample.raw_report)
    st.caption(
        _(
            "{matched:,} matched (blue) and {unmatched:,} unmatched (red) pairs of the "
            "training split · d = max(scale·raw + offset, floor) · margin {margin:g} (Train "
            "page)"
        ).format(
            matched=sample.raw_report.n_matched,
            unmatched=sample.raw_report.n_unmatched,
            margin=margin,
        )
    )
    if is_loss_distance:
        follow_preview(values, p_v, p_m)


# --- Preview -------------------------------------------------------------------------------


def preview_job() -> PreviewJob | None:
    return st.session_state.get(PREVIEW_JOB)


def _preview_steps() -> int:
    return int(st.session_state.get(PREVIEW_STEPS_KEY, DEFAULT_PREVIEW_STEPS))


def start_preview(values: dict[str, float], p_v: float, p_m: float) -> PreviewJob:
    """Start a preview of this setting, cancelling the one running (its worker waits for
    the old one to end)."""
    config = planned_config(GammaTransform(**values), p_v, p_m)
    model, _ = network_to_train(config)
    steps = _preview_steps()
    setting = (network_key(config), astuple(config), steps)
    job = PreviewJob(
        model, prepared(config), config, steps=steps, setting=setting, previous=preview_job()
    )
    st.session_state[PREVIEW_JOB] = job
    return job.start()


def follow_preview(values: dict[str, float], p_v: float, p_m: float) -> None:
    """After a first Preview, re-run it when the sliders settle on another setting (the
    live sliders report once the user stops moving; ``st.slider`` on release)."""
    job = preview_job()
    if job is None or not st.session_state.get(PREVIEW_FOLLOW_KEY, True):
        return
    guard = EngineErrors()
    with guard:
        config = planned_config(GammaTransform(**values), p_v, p_m)
        setting = (network_key(config), astuple(config), _preview_steps())
        if setting != job.setting:
            start_preview(values, p_v, p_m)
            # The preview section polls only while a job runs at the page's full run.
            st.rerun(scope="app")


def _start_clicked(p_v: float, p_m: float) -> None:
    try:
        start_preview(current_values(), p_v, p_m)
    except SoartLabError as exc:
        st.session_state["tune_preview_error"] = engine_message(str(exc))


def preview_section(p_v: float, p_m: float) -> None:
    """The Preview controls and, polled while it runs, its progress and result."""
    st.subheader(_("Preview: where this setting leads"))
    cols = st.columns([1, 1, 2])
    cols[0].number_input(
        _("Preview steps"),
        min_value=10,
        max_value=5000,
        step=50,
        key=state.persisted(PREVIEW_STEPS_KEY, DEFAULT_PREVIEW_STEPS),
        help=_(
            "Training steps of a copy of the network, on a subsample of at most 2,000 "
            "training samples, with the Train page's batch size and learning rate."
        ),
    )
    cols[1].button(
        _("Preview"),
        on_click=_start_clicked,
        args=(p_v, p_m),
        help=_("Train a copy of the network briefly with these values, in the background."),
        width="stretch",
    )
    cols[2].toggle(
        _("Re-run when the sliders settle"),
        key=state.persisted(PREVIEW_FOLLOW_KEY, True),
        help=_(
            "After the first Preview, each new setting cancels the running one and starts again."
        ),
    )
    message = st.session_state.pop("tune_preview_error", None)
    if message:
        st.error(message)
    job = preview_job()
    if job is None:
        st.caption(_("Preview trains in the background; the page stays usable meanwhile."))
        return
    running = job.is_running()

    @st.fragment(run_every=PREVIEW_POLL_SECONDS if running else None)
    def poll() -> None:
        snap = job.snapshot()
        if snap.status == "running":
            if st.button(_("Cancel preview"), key="tune_preview_cancel"):
                job.cancel()
            st.progress(
                min(snap.step / max(snap.steps, 1), 1.0),
                text=_("Preview: step {step}/{steps}").format(step=snap.step, steps=snap.steps)
                + (_(", loss {loss:.4f}").format(loss=snap.loss) if snap.loss == snap.loss else "")
                + f" · {snap.seconds:.0f} s",
            )
            return
        if running and st.session_state.get(PREVIEW_FINISHED) != job.job_id:
            # It ended since the page drew: redraw the page once, which stops the polling.
            st.session_state[PREVIEW_FINISHED] = job.job_id
            st.rerun(scope="app")
        _render_preview(snap)

    poll()


def _render_preview(snap: PreviewSnapshot) -> None:
    from soartlab.plots import pair_histogram

    if snap.status == "failed":
        st.error(engine_message(snap.error))
        return
    result = snap.result
    if result is None or result.steps == 0:
        st.info(_("Preview cancelled before its first step."))
        return
    if snap.status == "cancelled":
        st.info(
            _("Preview cancelled after {steps} steps; the figures are from there.").format(
                steps=result.steps
            )
        )
    before, after = result.before_report, result.report
    cols = st.columns(4)
    cols[0].metric(
        _("ROC AUC after preview"),
        f"{after.roc_auc:.3f}",
        f"{after.roc_auc - before.roc_auc:+.3f}",
        help=_("Held-out pairs (the split training never sees), on the trained copy."),
    )
    cols[1].metric(_("ROC AUC now"), f"{before.roc_auc:.3f}")
    cols[2].metric(
        _("Loss"),
        f"{result.last_loss:.4f}",
        f"{result.last_loss - result.first_loss:+.4f}",
        delta_color="inverse",
        help=_("Last step's loss; first step's was {loss:.4f}.").format(loss=result.first_loss),
    )
    cols[3].metric(_("Steps"), f"{result.steps}", help=f"{result.seconds:.1f} s")
    figures = st.columns(2)
    panels = (
        (
            result.before,
            _("Network now · ROC AUC {auc:.3f}").format(auc=before.roc_auc),
            "tune_preview_before",
        ),
        (
            result.after,
            _("After {steps} steps · ROC AUC {auc:.3f}").format(
                steps=result.steps, auc=after.roc_auc
            ),
            "tune_preview_after",
        ),
    )
    for column, (pairs, title, key) in zip(figures, panels, strict=True):
        column.markdown(f"**{title}**")
        figure = pair_histogram(pairs.matched, pairs.unmatched, x_title=_("gamma"), translate=_)
        figure.update_layout(height=300, margin={"t": 30, "b": 40})
        column.plotly_chart(figure, key=key, width="stretch")
    st.caption(
        _(
            "Preview took {seconds:.1f} s; outcome {outcome}. Held-out pairs before and after "
            "the steps, SOART3 gamma before the transform."
        ).format(seconds=result.seconds, outcome=outcome_words(result.outcome.value))
    )
