"""Fixtures shared across test modules: the demo set and one tiny trained run, made once
per test session (each module training its own made the suite slow)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from soartlab.demo import make_demo
from soartlab.prepare import PreparedData
from soartlab.record import RunRecord
from soartlab.runs import Run, RunStore
from soartlab.training import TrainConfig, TrainResult


def pytest_configure(config):
    """Under pytest-xdist each worker gets its share of the cores for torch, and so do
    the commands it starts: two workers of two threads each on two cores wait on each
    other's threads and ran some tests 30-60× slower."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        import torch

        share = max(1, (os.cpu_count() or 1) // workers)
        torch.set_num_threads(share)
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(share)


TINY_CONFIG = TrainConfig(epochs=2, pairs_per_epoch=512, batch_size=64, device="cpu")


@dataclass(frozen=True)
class TinyRun:
    """A run trained briefly on the full demo set and saved in a run store, as the Train
    page saves it. Read-only: tests that change files take `tiny_run_copy`."""

    dataset: object  # make_demo(): the data the app loads by default
    config: TrainConfig
    data: PreparedData
    result: TrainResult
    record: RunRecord
    run: Run
    store: RunStore


@pytest.fixture(scope="session")
def demo_set():
    """The built-in demo set (3,000 samples), as the app loads it."""
    return make_demo()


@pytest.fixture(scope="session")
def tiny_run(demo_set, tmp_path_factory) -> TinyRun:
    from soartlab.prepare import prepare
    from soartlab.training import Trainer, initial_model
    from soartlab.workflow import build_record, calibrate, save_run

    store = RunStore(tmp_path_factory.mktemp("runs"))
    data = prepare(demo_set, TINY_CONFIG.test_size, TINY_CONFIG.seed)
    result = Trainer(TINY_CONFIG).fit(initial_model(TINY_CONFIG, data), data)
    calibration = calibrate(TINY_CONFIG, data, result)
    run = store.new_run()
    record = build_record(TINY_CONFIG, data, result, label="tiny run", calibration=calibration)
    record = save_run(run, record, result, calibration)
    return TinyRun(demo_set, TINY_CONFIG, data, result, record, run, store)


@pytest.fixture
def tiny_run_copy(tiny_run, tmp_path) -> Run:
    """A copy of the tiny run's folder in a store of its own, free to change."""
    home = tmp_path / "runs"
    home.mkdir()
    shutil.copytree(tiny_run.run.path, home / tiny_run.run.run_id)
    return Run(Path(home / tiny_run.run.run_id))


@pytest.fixture
def unwritable_folder(tmp_path) -> Path:
    """A folder in which no file can be made: read-only, or /proc/self where the tests run
    as root (root ignores a folder's mode)."""
    import os

    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o555)
    if os.access(folder, os.W_OK):
        if not Path("/proc/self").is_dir():
            pytest.skip("running as root without /proc: no folder is read-only")
        return Path("/proc/self")
    return folder


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A training job of the app sets torch's (process-wide) thread count to its share of
    the cores; put it back after each test, so a test that compares two trainings does
    not see them run on different thread counts (sums in another order)."""
    import torch

    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
