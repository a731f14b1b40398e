"""The Train page's live part: start a job, poll it from a fragment, show the result."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import streamlit as st

from soartlab.ui import auth, decision_view, state
from soartlab.ui.feedback import EngineErrors, engine_message
from soartlab.ui.i18n import _
from soartlab.ui.jobs import JOBS, JobSnapshot, TrainingJob
from soartlab.ui.widgets import outcome_words, rates_row

POLL_SECONDS = 0.5
FINISHED_JOB = state.FINISHED_JOB


def _workspace_id() -> str | None:
    workspace = st.session_state.get(state.WORKSPACE)
    return workspace.id if workspace is not None else None


def job() -> TrainingJob | None:
    """The workspace's training job, kept by the server (`jobs.JOBS`): a refreshed page
    or a new tab on the same ``?ws=`` finds the job its workspace started."""
    ws_id = _workspace_id()
    found = JOBS.get(ws_id) if ws_id else None
    if found is not None:
        st.session_state[state.TRAIN_JOB] = found
        return found
    return st.session_state.get(state.TRAIN_JOB)


def start(
    dataset: Any, config: Any, *, label: str, resume_from: Path | None, auto_transform: bool
) -> TrainingJob:
    """Queue training in a worker thread owned by the server, under this session's
    workspace; the run is recorded as the signed-in user's.
    ``auto_transform``: nothing was tuned, so train with ``tuning.default_transform`` for
    this data (see ``workflow.training_setup``)."""
    running = job()
    if running is not None and running.is_running():
        return running
    new_job = TrainingJob(
        dataset,
        config,
        store=state.run_store(),
        label=label,
        resume_from=resume_from,
        auto_transform=auto_transform,
        owner=who.user if (who := auth.current()) is not None else "",
    )
    st.session_state[state.TRAIN_JOB] = new_job
    ws_id = _workspace_id()
    if ws_id:
        JOBS.put(ws_id, new_job)
    return new_job.start()


def _take_in(finished: TrainingJob, snap: JobSnapshot) -> bool:
    """Once per finished job: make its run the session's current run. True if new."""
    if st.session_state.get(FINISHED_JOB) == finished.job_id:
        return False
    st.session_state[FINISHED_JOB] = finished.job_id
    if snap.run_dir is not None:
        state.set_current_run(snap.run_dir)
        st.session_state.pop(state.RESUME_FROM, None)
    return True


def collect_finished() -> None:
    """Take in a job that ended while another page was open (called by app.py on every
    run), so the sidebar and the other pages see the new model at once."""
    current = job()
    if current is not None and not current.is_running():
        _take_in(current, current.snapshot())


def _progress_text(snap: JobSnapshot) -> str:
    if snap.status not in ("queued", "running"):
        words = outcome_words(snap.outcome)
        if snap.outcome == "finished":
            kept = snap.metrics.get("kept_epoch")
            if kept:
                return _(
                    "{outcome}: {epochs} epoch(s), epoch {kept} kept · {seconds:.0f} s"
                ).format(outcome=words, epochs=len(snap.history), kept=kept, seconds=snap.seconds)
            return _("{outcome}: {epochs} epoch(s) · {seconds:.0f} s").format(
                outcome=words, epochs=len(snap.history), seconds=snap.seconds
            )
        # where it ended, in the trainer's words ("stopped by the user in epoch 2, step
        # 26/40"): the history also holds the epoch that was cut short
        where = ""
        if snap.message and snap.message != "finished":
            where = f" ({engine_message(snap.message)})"
        return f"{words}{where} · {snap.seconds:.0f} s"
    if snap.status == "queued":
        return _(
            "Queued: position {position} — the machine trains {limit} job(s) at once; "
            "it starts when a slot is free"
        ).format(position=snap.queue_position, limit=_queue_limit())
    if snap.stop_requested:
        return _("Stopping at the next step…")
    if snap.epoch == 0:
        return _("Preparing the data and the model…")
    loss = _(", loss {loss:.4f}").format(loss=snap.loss) if snap.loss == snap.loss else ""
    where = _("Epoch {epoch}/{epochs}, step {step}/{steps}").format(
        epoch=snap.epoch, epochs=snap.epochs, step=snap.step, steps=snap.steps_per_epoch
    )
    return f"{where}{loss} · {snap.seconds:.0f} s"


def _queue_limit() -> int:
    from soartlab.jobqueue import shared_queue

    return shared_queue().limits.get("cpu", 1)


def _render_progress(snap: JobSnapshot) -> None:
    from soartlab.plots import training_curves

    st.progress(min(max(snap.fraction, 0.0), 1.0), text=_progress_text(snap))
    if snap.history:
        figure = training_curves(snap.history, translate=_)
        figure.update_layout(height=340, margin={"t": 40, "b": 40})
        st.plotly_chart(figure, key="train_curves", width="stretch")


def monitor() -> None:
    """The poller: a fragment that reruns every ``POLL_SECONDS`` while a job runs."""
    current = job()
    if current is None:
        return
    running = current.is_running()

    @st.fragment(run_every=POLL_SECONDS if running else None)
    def poll() -> None:
        snap = current.snapshot()
        if snap.status in ("queued", "running"):
            if st.button(
                _("Stop"),
                key="train_stop",
                help=_("Ends at the next step; keeps the last good model."),
            ):
                current.stop()
                snap = current.snapshot()
            _render_progress(snap)
            return
        if _take_in(current, snap) and running:
            # The job ended since the page drew: redraw the whole page with the result.
            st.rerun(scope="app")
        _render_progress(snap)

    poll()


def results() -> None:
    """Metrics and downloads of the finished job, and the "Next round" button."""
    current = job()
    if current is None:
        return
    snap = current.snapshot()
    if snap.status in ("queued", "running"):
        return
    _take_in(current, snap)
    if snap.status == "failed":
        st.error(engine_message(snap.error))
        return
    reason = engine_message(snap.message)
    if snap.run_dir is None:  # stopped while waiting in the queue
        st.info(_("Training was stopped before it started; nothing was saved."))
        return
    if snap.outcome == "finished":
        st.success(
            _("Training finished in {seconds:.0f} s; the run is saved.").format(
                seconds=snap.seconds
            )
        )
        kept = snap.metrics.get("kept_epoch")
        if snap.message != "finished" or kept != len(snap.history):
            note = _("Kept the model of epoch {kept} (best validation accuracy).").format(kept=kept)
            if snap.message != "finished":  # stopped early, in the trainer's words
                note = f"{note} {reason[0].upper()}{reason[1:]}."
            st.info(note)
    elif snap.outcome == "stopped":
        st.warning(_("Training {reason}; the model at that step was saved.").format(reason=reason))
    elif snap.outcome == "memorising":
        st.error(reason)
    elif snap.outcome == "not_learning":
        st.error(
            _(
                "Training ended early, {reason} The run is saved for the record; its figures "
                "are those of the network before training."
            ).format(reason=reason)
        )
    else:
        st.warning(
            _("Training ended: {reason}; the last good epoch's model was saved.").format(
                reason=reason
            )
        )
    if snap.run_dir is None:
        return
    rates_row(snap.metrics, held_out_samples=True, baselines=snap.baselines)
    guard = EngineErrors(_("Could not open the new run: "))
    with guard:
        run = state.current_run()
        if run is not None and str(run.run_dir) == str(snap.run_dir):
            decision_view.operating_point_panel(run, "train")
    downloads(snap.run_dir)
    st.button(
        _("Next round: re-tune on the new embeddings"),
        on_click=_next_round,
        args=(str(snap.run_dir),),
        help=_("Tune the distance on this model's embeddings, then continue training from it."),
    )


def _read(path: Path) -> bytes:
    return path.read_bytes()


def downloads(run_dir: Path) -> None:
    """Download buttons for the .pth state_dict and the bundle .zip (built on click)."""
    from soartlab.runs import Run

    run = Run(run_dir)
    cols = st.columns(2)
    cols[0].download_button(
        _("Download model (.pth)"),
        data=functools.partial(_read, run.pth_path),
        file_name=f"soartlab-{Path(run_dir).name}.pth",
        mime="application/octet-stream",
        on_click="ignore",
        type="primary",
        key=f"download_pth_{Path(run_dir).name}",
        help=_(
            "A plain state_dict: load_state_dict(torch.load(path)) into the article's SiameseNet."
        ),
        width="stretch",
    )
    cols[1].download_button(
        _("Download bundle (.zip)"),
        data=run.bundle,
        file_name=f"soartlab-{Path(run_dir).name}.zip",
        mime="application/zip",
        on_click="ignore",
        key=f"download_zip_{Path(run_dir).name}",
        help=_(
            "Weights (safetensors), reference embeddings and run.json: upload it on the "
            "Predict page."
        ),
        width="stretch",
    )


def _next_round(run_dir: str) -> None:
    """Button callback: continue from this run after re-tuning on its embeddings."""
    from soartlab.ui.tune import SOURCE_MODEL

    state.set_current_run(run_dir)
    st.session_state[state.RESUME_FROM] = run_dir
    state.remember(state.TUNE_SOURCE, SOURCE_MODEL)
    st.session_state["soart_goto"] = state.TUNE_PAGE


def gpu_name() -> str | None:
    """The CUDA GPU's name, or None when training can only run on the CPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0)


def augmentation_preview(data: state.LoadedData, augment: str, arch: str):
    """`soartlab.augment.preview_examples` for the session's data, computed once per data
    and setting."""
    from soartlab.augment import preview_examples

    key = (data.version, augment, arch)
    return state.cached(
        "train_augment_preview", key, lambda: preview_examples(data.dataset, augment, arch)
    )


def learnability_problem(data: state.LoadedData, config: Any, resume_from: Any) -> str:
    """What Start would refuse, shown before it: the engine's message when the loss would
    learn nothing from the network to be trained under ``config`` (``workflow.learnability``),
    else "". Computed once per data, settings and starting run."""
    import json

    from soartlab.errors import SoartLabError
    from soartlab.workflow import learnability

    def compute() -> str:
        try:
            learnability(data.dataset, config, resume_from=resume_from)
        except SoartLabError as exc:
            return str(exc)
        return ""

    key = (data.version, json.dumps(config.to_dict(), sort_keys=True), str(resume_from))
    return state.cached("train_learnability", key, compute)


def make_config(*, tuned: state.TunedTransform | None, **settings: Any) -> Any:
    """A validated ``TrainConfig`` from the page's settings and the tuned transform (none
    tuned: the article's, TrainConfig's default)."""
    from soartlab.config import TrainConfig

    if tuned is not None:
        settings.update(transform=tuned.transform, p_v=float(tuned.p_v), p_m=float(tuned.p_m))
    config = TrainConfig(**settings)
    config.validate()
    return config
