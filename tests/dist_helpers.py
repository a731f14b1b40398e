"""Test-only helpers for distributed training: a worker for torch.multiprocessing.spawn,
and a torchrun entry point with fault injection.

Run as a script (``torchrun ... tests/dist_helpers.py train ...``) it is the SOART Lab CLI
with one addition for tests: with ``SOARTLAB_TEST_CRASH_AT_EPOCH=E`` and
``SOARTLAB_TEST_CRASH_RANK=R``, worker R kills itself (SIGKILL, as an out-of-memory
killer or a lost machine would) at its second training step of epoch E, on the first
attempt only, so that torchrun restarts the group. The second step is chosen because
every rank has by then passed a collective of epoch E, which rank 0 only enters after
writing the training state of epoch E-1. None of this is in the product code.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CRASH_EPOCH_ENV = "SOARTLAB_TEST_CRASH_AT_EPOCH"
CRASH_RANK_ENV = "SOARTLAB_TEST_CRASH_RANK"


def spawn_worker(rank: int, world_size: int, init_file: str, out: str, settings: dict) -> None:
    """One rank of a spawned gloo group: train on settings["data"], rank 0 saves the run
    folder (as the CLI does), every rank dumps its final weights and history for the test."""
    import torch

    from soartlab import distributed
    from soartlab.data import load_dataset
    from soartlab.prepare import prepare
    from soartlab.runs import Run
    from soartlab.training import TrainConfig, Trainer, TrainingState, initial_model
    from soartlab.workflow import build_record, calibrate, save_run

    torch.set_num_threads(1)
    out_dir = Path(out)
    with distributed.process_group(
        "gloo", "cpu", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    ) as context:
        dataset = load_dataset(settings.pop("data"))
        config = TrainConfig(**settings)
        data = prepare(dataset, config.test_size, config.seed)
        run = Run(out_dir / "run")
        state = TrainingState(run.state_path, config, data.fingerprint)
        trainer = Trainer(config)
        result = trainer.fit(initial_model(config, data), data, on_epoch_end=state.save)
        if context.is_main:
            calibration = calibrate(config, data, result)
            record = build_record(config, data, result, calibration=calibration)
            save_run(run, record, result, calibration)
    torch.save(result.model.state_dict(), out_dir / f"weights-rank{rank}.pt")
    (out_dir / f"result-rank{rank}.json").write_text(
        json.dumps(
            {
                "history": result.history,
                "metrics": result.metrics,
                "embedded_rows": trainer.embedded_rows,
            }
        )
    )


def _install_crash_hook() -> None:
    epoch_text = os.environ.get(CRASH_EPOCH_ENV)
    if not epoch_text or os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0":
        return
    if os.environ.get("RANK", "0") != os.environ.get(CRASH_RANK_ENV, "1"):
        return
    from soartlab import losses, training

    crash_epoch = int(epoch_text)
    seen = {"epoch": 0, "steps": 0}
    pair_seed = training.pair_seed
    forward = losses.ContrastiveLoss.forward

    def counting_pair_seed(seed, epoch, rank):
        seen["epoch"], seen["steps"] = epoch, 0
        return pair_seed(seed, epoch, rank)

    def crashing_forward(self, e1, e2, target):
        seen["steps"] += 1
        if seen["epoch"] == crash_epoch and seen["steps"] == 2:
            print(f"test hook: killing rank {os.environ.get('RANK')}", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return forward(self, e1, e2, target)

    training.pair_seed = counting_pair_seed
    losses.ContrastiveLoss.forward = crashing_forward


if __name__ == "__main__":
    _install_crash_hook()
    from soartlab.cli import main

    sys.exit(main())
