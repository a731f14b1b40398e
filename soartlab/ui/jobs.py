"""Training in a worker thread, owned by the server, polled by the Train page.

The worker makes no ``st.*`` call: it runs ``soartlab.workflow.train_run`` and writes
progress into a :class:`TrainingJob` (a plain object guarded by a lock). Jobs belong to the
server, not to a browser tab: `JOBS` keeps each workspace's latest job, so a refresh or a
new tab on the same workspace (``?ws=``) finds it again and the page's
``@st.fragment(run_every=...)`` poller re-attaches. A job waits in the machine's queue
(`soartlab.jobqueue`) until a slot is free and trains with its share of the cores. Stop
sets the job's ``threading.Event`` and the trainer ends at its next step, keeping the last
good model (a job stopped while queued never starts).
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
from soartlab.jobqueue import JobQueue, Ticket, shared_queue

log = logging.getLogger(__name__)


@dataclass
class JobSnapshot:
    """A consistent copy of a job's progress, safe to render."""

    # "queued" (waiting for a slot) | "running" | "done" (trained to the end) |
    # "stopped" (any other end) | "failed"
    status: str
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
    queue_position: int = 0  # while queued: 1 = next to start
    threads: int = 0  # intra-op threads it trains with now (its share of the cores)


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
        owner: str = "",
        queue: JobQueue | None = None,
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
        self.owner = owner  # the signed-in user who started it ("" without sign-in)
        self._queue = queue or shared_queue()
        self._ticket: Ticket | None = None
        self._threads = 0
        self._lock = threading.Lock()
        self.stop_event = threading.Event()
        self._snapshot = JobSnapshot(status="queued", epochs=int(getattr(config, "epochs", 0)))
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._work, name="soartlab-train", daemon=True)
        self.result: Any = None  # TrainResult once finished

    def start(self) -> TrainingJob:
        """Queue the job; its thread starts when the machine has a slot for it."""
        self._ticket = self._queue.submit(self.pool, self._begin)
        return self

    @property
    def pool(self) -> str:
        """The queue's pool: "cuda" when it trains on a GPU, else "cpu"."""
        device = str(getattr(self._config, "device", "cpu"))
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        return "cuda" if device == "cuda" else "cpu"

    def _begin(self) -> None:
        with self._lock:
            self._snapshot.status = "running"
            self._started = time.monotonic()  # the time shown is training time, not waiting
        self._thread.start()

    def _share_cores(self) -> None:
        """Train with this job's share of the cores now (per thread under OpenMP)."""
        import torch

        threads = self._queue.threads(self.pool)
        if threads != self._threads:
            torch.set_num_threads(threads)
            self._threads = threads

    # -- worker side (no Streamlit here) -----------------------------------------
    def _on_progress(self, progress: Any) -> None:
        self._share_cores()  # jobs started or ended since the last step
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
            self._share_cores()
            run, result = train_run(
                self._dataset,
                self._config,
                store=self._store,
                label=self._label,
                callback=self._on_progress,
                stop_event=self.stop_event,
                resume_from=self._resume_from,
                auto_transform=self._auto_transform,
                owner=self.owner,
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
                message=result.stop_reason
                or result.metrics.get("validation", {}).get("early_stop")
                or "finished",
            )
        finally:
            if self._ticket is not None:
                self._queue.done(self._ticket)

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
        copy.threads = self._threads
        if copy.status == "running":
            copy.seconds = time.monotonic() - self._started
        if copy.status == "queued" and self._ticket is not None:
            copy.queue_position = self._queue.position(self._ticket)
        return copy

    def stop(self) -> None:
        """End at the next step; a job still waiting for a slot is taken off the queue."""
        self.stop_event.set()
        if self._ticket is not None and self._queue.cancel(self._ticket):
            self._finish("stopped", outcome="stopped", message="stopped before it started")

    def is_running(self) -> bool:
        """Queued or training: not ended yet."""
        with self._lock:
            return self._snapshot.status in ("queued", "running")

    def summary(self) -> str:
        snap = self.snapshot()
        from soartlab.ui.i18n import _

        if snap.status == "queued":
            return _("queued, position {n}").format(n=snap.queue_position)
        return _("epoch {epoch}/{epochs}, {fraction:.0%}").format(
            epoch=snap.epoch, epochs=snap.epochs, fraction=snap.fraction
        )

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ended (tests, the benchmark); True if it did."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.is_running():
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


class JobRegistry:
    """The server's training jobs, the latest one per workspace id; thread-safe.

    Kept for the life of the server process, so that a job outlives the browser tab
    that started it; a workspace's next job replaces its finished one.
    """

    def __init__(self) -> None:
        self._jobs: dict[str, TrainingJob] = {}
        self._lock = threading.Lock()

    def get(self, workspace: str) -> TrainingJob | None:
        with self._lock:
            return self._jobs.get(workspace)

    def put(self, workspace: str, job: TrainingJob) -> TrainingJob:
        with self._lock:
            self._jobs[workspace] = job
        return job

    def running(self) -> list[TrainingJob]:
        with self._lock:
            return [job for job in self._jobs.values() if job.is_running()]


JOBS = JobRegistry()
