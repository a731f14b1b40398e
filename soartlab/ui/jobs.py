"""Training in a worker thread, polled by the Train page.

The worker makes no ``st.*`` call: it runs ``soartlab.workflow.train_run`` and writes
progress into a :class:`TrainingJob` (a plain object guarded by a lock) that the page
keeps in ``st.session_state`` and reads from a ``@st.fragment(run_every=...)`` poller.
A click elsewhere in the app reruns scripts but never touches the thread; Stop sets the
job's ``threading.Event`` and the trainer ends at its next step, keeping the last good
model.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soartlab.errors import SoartLabError

log = logging.getLogger(__name__)


@dataclass
class JobSnapshot:
    """A consistent copy of a job's progress, safe to render."""

    status: str  # "running" | "done" (trained to the end) | "stopped" (any other end) | "failed"
    outcome: str = ""  # soartlab.training.Outcome value once trained: finished, stopped, ...
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps_per_epoch: int = 0
    loss: float = float("nan")
    fraction: float = 0.0
    history: list[dict] = field(default_factory=list)
    message: str = ""
    error: str = ""
    run_dir: Path | None = None
    metrics: dict = field(default_factory=dict)
    baselines: Any = None  # soartlab.training.Baselines of the run, once trained
    stop_requested: bool = False
    seconds: float = 0.0


class TrainingJob:
    """One training run in a daemon thread; every public method is thread-safe."""

    def __init__(
        self,
        dataset: Any,
        config: Any,
        *,
        store: Any,
        label: str = "",
        resume_from: Path | None = None,
        auto_transform: bool = False,
    ) -> None:
        # Who this job is, for the page's "already taken in" mark: id() of a finished job
        # can be reused by a later one.
        self.job_id = uuid.uuid4().hex
        self._dataset = dataset
        self._config = config
        self._store = store
        self._label = label
        self._resume_from = resume_from
        self._auto_transform = auto_transform
        self._lock = threading.Lock()
        self.stop_event = threading.Event()
        self._snapshot = JobSnapshot(status="running", epochs=int(getattr(config, "epochs", 0)))
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._work, name="soartlab-train", daemon=True)
        self.result: Any = None  # TrainResult once finished

    def start(self) -> TrainingJob:
        self._thread.start()
        return self

    # -- worker side (no Streamlit here) -----------------------------------------
    def _on_progress(self, progress: Any) -> None:
        if progress.kind == "end":
            # The end carries no step: keep the step it stopped at on show, not "step 0/0".
            return
        with self._lock:
            snap = self._snapshot
            snap.epoch = progress.epoch
            snap.epochs = progress.epochs
            snap.step = progress.step
            snap.steps_per_epoch = progress.steps_per_epoch
            if progress.loss == progress.loss:  # not NaN
                snap.loss = float(progress.loss)
            snap.fraction = float(progress.fraction)
            if progress.kind == "epoch" and progress.record is not None:
                snap.history.append(dict(progress.record))
            if progress.message:
                snap.message = progress.message

    def _work(self) -> None:
        from soartlab.training import Outcome
        from soartlab.workflow import train_run

        try:
            run, result = train_run(
                self._dataset,
                self._config,
                store=self._store,
                label=self._label,
                callback=self._on_progress,
                stop_event=self.stop_event,
                resume_from=self._resume_from,
                auto_transform=self._auto_transform,
            )
        except SoartLabError as exc:
            self._finish("failed", error=str(exc))
        except Exception as exc:  # the thread must report, not die silently
            log.exception("training worker failed")
            self._finish("failed", error=f"Training failed unexpectedly: {exc}")
        else:
            self.result = result
            status = "done" if result.outcome is Outcome.FINISHED else "stopped"
            self._finish(
                status,
                run_dir=run.path,
                outcome=result.outcome.value,
                baselines=result.baselines,
                metrics=dict(result.metrics),
                history=list(result.history),
                message=result.stop_reason or "finished",
            )

    def _finish(
        self,
        status: str,
        *,
        error: str = "",
        run_dir: Path | None = None,
        outcome: str = "",
        baselines: Any = None,
        metrics: dict | None = None,
        history: list[dict] | None = None,
        message: str = "",
    ) -> None:
        with self._lock:
            snap = self._snapshot
            snap.status = status
            snap.outcome = outcome
            snap.baselines = baselines
            snap.error = error
            snap.run_dir = run_dir
            snap.metrics = metrics or {}
            if history is not None:
                snap.history = history
            if message:
                snap.message = message
            if status == "done":
                snap.fraction = 1.0
            snap.seconds = time.monotonic() - self._started

    # -- page side ---------------------------------------------------------------
    def snapshot(self) -> JobSnapshot:
        with self._lock:
            snap = self._snapshot
            copy = JobSnapshot(**{**snap.__dict__, "history": list(snap.history)})
        copy.stop_requested = self.stop_event.is_set()
        if copy.status == "running":
            copy.seconds = time.monotonic() - self._started
        return copy

    def stop(self) -> None:
        self.stop_event.set()

    def is_running(self) -> bool:
        with self._lock:
            return self._snapshot.status == "running"

    def summary(self) -> str:
        snap = self.snapshot()
        from soartlab.ui.i18n import _

        return _("epoch {epoch}/{epochs}, {fraction:.0%}").format(
            epoch=snap.epoch, epochs=snap.epochs, fraction=snap.fraction
        )
