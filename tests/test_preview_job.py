"""Preview's worker thread (soartlab.ui.preview_job): it reports, it cancels cleanly."""

from __future__ import annotations

import time
from dataclasses import replace

from soartlab.transform import GammaTransform
from soartlab.ui.preview_job import PreviewJob


def _job(tiny_run, steps: int, previous: PreviewJob | None = None, **changes) -> PreviewJob:
    config = replace(tiny_run.config, **changes)
    return PreviewJob(
        tiny_run.result.model,
        tiny_run.data,
        config,
        steps=steps,
        setting=(steps, tuple(sorted(changes))),
        previous=previous,
    )


def test_a_new_setting_cancels_the_running_preview_and_waits_for_it(tiny_run):
    slow = _job(tiny_run, steps=100_000).start()
    deadline = time.monotonic() + 60
    while slow.snapshot().step == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert slow.is_running() and slow.snapshot().step > 0

    new = _job(tiny_run, steps=3, previous=slow, transform=GammaTransform(scale=2.0)).start()
    new.join(120)
    old = slow.snapshot()
    assert old.status == "cancelled" and old.result.cancelled
    assert 0 < old.result.steps < 100_000, "ended at a step, with the figures from there"
    done = new.snapshot()
    assert done.status == "done" and done.result.steps == 3
    assert 0.0 <= done.result.report.roc_auc <= 1.0


def test_an_engine_error_is_reported_not_raised(tiny_run):
    job = _job(tiny_run, steps=0).start()  # the engine refuses 0 steps
    job.join(30)
    snap = job.snapshot()
    assert snap.status == "failed" and "steps" in snap.error
