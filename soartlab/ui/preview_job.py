"""Preview in a worker thread: a few hundred training steps on a copy of the network.

Like :mod:`soartlab.ui.jobs`, the worker makes no ``st.*`` call: it runs
``soartlab.tuning.preview`` and writes progress into a :class:`PreviewJob` guarded by a
lock, which the Tune page keeps in ``st.session_state`` and reads from a fragment with
``run_every``. A new setting cancels the running preview: the new job's worker sets the
old one's stop event and waits for it to end before it starts, so two previews never
train at once on the same cores.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from soartlab.errors import SoartLabError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreviewSnapshot:
    """A consistent copy of a preview's progress, safe to render."""

    status: str  # "running" | "done" | "cancelled" | "failed"
    step: int
    steps: int
    loss: float
    seconds: float
    result: Any = None  # tuning.PreviewResult once done (or cancelled after some steps)
    error: str = ""


class PreviewJob:
    """One ``tuning.preview`` run in a daemon thread; public methods are thread-safe.

    ``setting`` is what the preview was asked for (hashable, compared by the page to see
    whether the sliders have moved on); ``previous`` is a job to cancel and wait for.
    """

    def __init__(
        self,
        model: Any,
        data: Any,
        config: Any,
        *,
        steps: int,
        setting: tuple,
        previous: PreviewJob | None = None,
    ) -> None:
        self.job_id = uuid.uuid4().hex
        self.setting = setting
        self._model = model
        self._data = data
        self._config = config
        self._steps = steps
        self._previous = previous
        self._lock = threading.Lock()
        self.stop_event = threading.Event()
        self._status = "running"
        self._step = 0
        self._loss = float("nan")
        self._result: Any = None
        self._error = ""
        self._started = time.monotonic()
        self._seconds = 0.0
        self._thread = threading.Thread(target=self._work, name="soartlab-preview", daemon=True)

    def start(self) -> PreviewJob:
        self._thread.start()
        return self

    # -- worker side (no Streamlit here) -----------------------------------------
    def _on_progress(self, progress: Any) -> None:
        if progress.kind != "step":
            return
        with self._lock:
            self._step = int(progress.step)
            if progress.loss == progress.loss:  # not NaN
                self._loss = float(progress.loss)

    def _work(self) -> None:
        from soartlab.tuning import preview

        if self._previous is not None:
            self._previous.cancel()
            self._previous.join()
            self._previous = None  # let the old job (and its result) be collected
        self._started = time.monotonic()  # time of its own, not the wait for the old one
        try:
            result = preview(
                self._model,
                self._data,
                self._config,
                steps=self._steps,
                stop_event=self.stop_event,
                callback=self._on_progress,
            )
        except SoartLabError as exc:
            self._finish("failed", error=str(exc))
        except Exception as exc:  # the thread must report, not die silently
            log.exception("preview worker failed")
            self._finish("failed", error=f"Preview failed unexpectedly: {exc}")
        else:
            self._finish("cancelled" if result.cancelled else "done", result=result)

    def _finish(self, status: str, *, result: Any = None, error: str = "") -> None:
        with self._lock:
            self._status = status
            self._result = result
            self._error = error
            self._seconds = time.monotonic() - self._started

    # -- page side ---------------------------------------------------------------
    def snapshot(self) -> PreviewSnapshot:
        with self._lock:
            running = self._status == "running"
            return PreviewSnapshot(
                status=self._status,
                step=self._step,
                steps=self._steps,
                loss=self._loss,
                seconds=time.monotonic() - self._started if running else self._seconds,
                result=self._result,
                error=self._error,
            )

    def cancel(self) -> None:
        self.stop_event.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def is_running(self) -> bool:
        with self._lock:
            return self._status == "running"
