"""Contrastive training of the Siamese embedding network.

The loop knows nothing about the UI: it reports through a callback and checks a stop
flag. It is rank-aware: under `torch.distributed` (see `soartlab.distributed`) each rank
draws its own share of pairs (seeded by seed, epoch and rank) and `batch_size // world`
pairs per step, so one optimiser step still sees `batch_size` pairs; gradients are
averaged by DistributedDataParallel, and the loss, stop flag and NaN flag are reduced
across ranks, so every rank stops together. Rank 0 alone writes the training state;
on resume it reads the state and sends it to the other ranks.
"""

from __future__ import annotations

import copy
import io
import json
import math
import os
import pickle
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from soartlab import data as D
from soartlab import distributed
from soartlab.checkpoint import atomic_write_bytes
from soartlab.config import TrainConfig
from soartlab.distances import EuclideanDistance, SOART3Distance
from soartlab.errors import CheckpointError, SoartLabError
from soartlab.evaluation import classification_metrics, classify, embed
from soartlab.losses import ContrastiveLoss
from soartlab.models import ModelConfig, SiameseNet, build_model


def training_distance(config: TrainConfig):
    """The distance the loss uses."""
    if config.loss == "soart3":
        return SOART3Distance(transform=config.transform, p_v=config.p_v, p_m=config.p_m)
    return EuclideanDistance()


def evaluation_distance(loss: str, p_v: float = 4.0, p_m: float = 1.0):
    """The distance for nearest-neighbour classification: the untransformed metric the
    model was trained with (the floor of the transform would only create ties)."""
    if loss == "soart3":
        return SOART3Distance(transform=None, p_v=p_v, p_m=p_m)
    return EuclideanDistance()


def distance_spec(loss: str, p_v: float, p_m: float) -> dict:
    """JSON form of `evaluation_distance`, stored in run metadata:
    `get_distance(**spec)` rebuilds exactly it (the transform included, i.e. none)."""
    distance = evaluation_distance(loss, p_v, p_m)
    return {"name": distance.name, **distance.params()}


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SoartLabError("device 'cuda' was asked for but no CUDA GPU is available.")
    return torch.device(device)


@dataclass
class Progress:
    """One progress event for the callback."""

    kind: str  # "step" | "epoch" | "done" | "stopped" | "nan" | "resumed"
    epoch: int  # 1-based
    epochs: int
    step: int = 0  # 1-based within the epoch
    steps_per_epoch: int = 0
    loss: float = float("nan")
    record: dict | None = None  # the epoch's history row, for "epoch"
    message: str = ""

    @property
    def fraction(self) -> float:
        """Share of the whole run done, 0..1."""
        if self.kind == "done":
            return 1.0
        per_epoch = max(self.steps_per_epoch, 1)
        return min(1.0, ((self.epoch - 1) + self.step / per_epoch) / max(self.epochs, 1))


@dataclass
class TrainResult:
    model: SiameseNet
    history: list[dict]
    metrics: dict
    metadata: dict
    references: tuple[np.ndarray, np.ndarray]  # train-split embeddings (N, e), labels (N,)
    stopped: bool = False
    stop_reason: str = ""
    warnings: list[str] = field(default_factory=list)


def pair_seed(seed: int, epoch: int, rank: int) -> int:
    """Seed for one rank's pairs in one epoch: distinct per (seed, epoch, rank)."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


class Trainer:
    """Trains a SiameseNet on a dataset with the contrastive loss.

    callback(Progress) is called on every step and epoch (on rank 0 only when
    distributed), and once with kind "resumed" when training continues from a saved
    state. Setting `stop_event` ends training at the next step and keeps the last
    good state; a NaN loss stops with the epoch named and restores the state from the
    end of the last good epoch.
    """

    def __init__(
        self,
        config: TrainConfig,
        callback: Callable[[Progress], None] | None = None,
        stop_event: threading.Event | None = None,
    ):
        config.validate()
        self.config = config
        self.callback = callback
        self.stop_event = stop_event or threading.Event()
        self.rank, self.world_size = distributed.rank_world()
        if self.world_size > 1:
            # one device per worker: GPU number LOCAL_RANK when training on CUDA
            local_rank = int(os.environ.get("LOCAL_RANK", self.rank))
            self.device = distributed.local_device(config.device, local_rank)
        else:
            self.device = resolve_device(config.device)

    # -- helpers ---------------------------------------------------------------
    def _emit(self, progress: Progress) -> None:
        if self.callback is not None and self.rank == 0:
            self.callback(progress)

    def _all_reduce(self, values: list[float]) -> list[float]:
        """Sum a few floats over ranks (identity in a single process)."""
        if self.world_size == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(t)
        return t.tolist()

    @property
    def _comm_device(self) -> torch.device:
        if dist.is_initialized() and dist.get_backend() == "nccl":
            return self.device
        return torch.device("cpu")

    def _wrap(self, model: SiameseNet) -> torch.nn.Module:
        if self.world_size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index or 0] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    # -- the loop --------------------------------------------------------------
    def fit(
        self,
        dataset,
        *,
        init_from: dict | None = None,
        state_path: str | Path | None = None,
        resume_state: bool = False,
    ) -> TrainResult:
        """Train on `dataset` (the `soartlab.data` dataset object).

        init_from: metadata + state_dict of an earlier run to warm-start from (a new round:
            weights and normalisation are reused, the optimiser starts fresh).
        state_path: where to keep a training state after every epoch (model, optimiser,
            epoch, history) so that an interrupted run can resume exactly.
        resume_state: continue from `state_path` when it exists.
        """
        cfg = self.config
        warnings = D.check_trainable(dataset)
        names = D.label_names(dataset)
        good = D.good_index(names, cfg.good_class)
        shape = tuple(D.input_shape(dataset))
        train_ds, test_ds = D.split(dataset, test_size=cfg.test_size, seed=cfg.seed)
        x_train, y_train = D.to_arrays(train_ds)
        x_test, y_test = D.to_arrays(test_ds)

        model_config = ModelConfig(
            input_shape=shape, hidden=tuple(cfg.hidden), embedding_dim=cfg.embedding_dim
        )
        torch.manual_seed(cfg.seed)
        model = build_model(model_config)
        if init_from is not None:
            normalization = D.Normalization.from_dict(init_from["metadata"]["normalization"])
            _load_weights(model, init_from["state_dict"])
        else:
            normalization = D.Normalization.fit(x_train, per_feature=len(shape) == 1)
        x_train = normalization.apply(x_train).astype(np.float32, copy=False)
        x_test = normalization.apply(x_test).astype(np.float32, copy=False)

        model.to(self.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        loss_fn = ContrastiveLoss(training_distance(cfg), margin=cfg.margin)
        eval_distance = evaluation_distance(cfg.loss, cfg.p_v, cfg.p_m)

        def held_out() -> tuple[np.ndarray, dict]:
            """The current weights on the held-out split, the train split as references:
            `(train embeddings (N, e), classification_metrics dict)`."""
            ref = embed(model, x_train, device=self.device)
            query = embed(model, x_test, device=self.device)
            pred, _ = classify(
                ref, y_train, query, eval_distance, k=cfg.knn_k, n_classes=len(names)
            )
            return ref, classification_metrics(y_test, pred, names, good)

        history: list[dict] = []
        start_epoch = 1
        state_path = Path(state_path) if state_path else None
        if resume_state and state_path is not None:
            # Rank 0 reads the state and sends it on, so other machines need not see the file.
            raw = state_path.read_bytes() if self.rank == 0 and state_path.exists() else b""
            if self.world_size > 1:
                raw = distributed.broadcast_bytes(raw, device=self._comm_device)
            if raw:
                done, history = _restore_state(raw, str(state_path), model, optimizer, cfg)
                start_epoch = done + 1
                self._emit(
                    Progress(
                        "resumed",
                        start_epoch,
                        cfg.epochs,
                        message=f"resuming from {state_path} after epoch {done}",
                    )
                )
        # Wrapped after the restore: DDP also broadcasts rank 0's weights when it starts.
        wrapped = self._wrap(model)

        # The whole training split lives on the device; a step gathers its pairs by index.
        x_dev = torch.as_tensor(x_train, device=self.device)
        y_np = y_train
        share = max(cfg.pairs_per_epoch // self.world_size, 1)
        # Each rank takes its part of a step's batch: one optimiser step sees batch_size
        # pairs whatever the number of ranks, so a run behaves like a single-process one.
        batch = max(cfg.batch_size // self.world_size, 1)
        steps = math.ceil(share / batch)
        last_good = copy.deepcopy(model.state_dict())
        stopped, stop_reason = False, ""
        # (train-split embeddings, held-out metrics) of the current weights: cleared when
        # the weights change, so the end of training reuses the last epoch's evaluation.
        evaluated: tuple[np.ndarray, dict] | None = None

        for epoch in range(start_epoch, cfg.epochs + 1):
            started = time.perf_counter()
            wrapped.train()
            i, j, target = D.sample_pairs(
                y_np, share, cfg.matched_fraction, seed=pair_seed(cfg.seed, epoch, self.rank)
            )
            i_t = torch.as_tensor(i, device=self.device)
            j_t = torch.as_tensor(j, device=self.device)
            t_t = torch.as_tensor(target, device=self.device)
            loss_sum, seen = 0.0, 0
            for step in range(steps):
                if self.world_size == 1 and self.stop_event.is_set():
                    stopped, stop_reason = True, f"stopped by the user in epoch {epoch}"
                    break
                sl = slice(step * batch, (step + 1) * batch)
                e1, e2 = wrapped(x_dev[i_t[sl]], x_dev[j_t[sl]])
                loss = loss_fn(e1, e2, t_t[sl])
                bad = not torch.isfinite(loss).item()
                if self.world_size > 1:
                    # one collective per step carries both flags: every rank stops together
                    stop_flag, bad_flag = self._all_reduce(
                        [float(self.stop_event.is_set()), float(bad)]
                    )
                    bad = bad_flag > 0
                    if stop_flag > 0 and not bad:
                        stopped, stop_reason = True, f"stopped by the user in epoch {epoch}"
                        break
                if bad:
                    stopped, stop_reason = True, f"loss became NaN in epoch {epoch}"
                    model.load_state_dict(last_good)
                    evaluated = None
                    break
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                evaluated = None
                n = len(t_t[sl])
                loss_sum += loss.item() * n
                seen += n
                self._emit(Progress("step", epoch, cfg.epochs, step + 1, steps, loss.item()))
            if stopped and seen == 0:
                break
            total_loss, total_seen = self._all_reduce([loss_sum, float(seen)])
            evaluated = held_out()
            scores = evaluated[1]
            record = {
                "epoch": epoch,
                "loss": total_loss / max(total_seen, 1.0),
                "test_accuracy": scores["accuracy"],
                "escape_rate": scores["escape_rate"],
                "overkill_rate": scores["overkill_rate"],
            }
            record["seconds"] = time.perf_counter() - started
            history.append(record)
            if not stopped:
                last_good = copy.deepcopy(model.state_dict())
            if state_path is not None and self.rank == 0 and not stopped:
                _save_state(state_path, model, optimizer, epoch, history, cfg)
            self._emit(
                Progress("epoch", epoch, cfg.epochs, steps, steps, record["loss"], record=record)
            )
            if stopped:
                break

        if self.world_size > 1:
            dist.barrier()
        model.eval()
        if evaluated is None:  # resumed with no epoch left, stopped at once, or NaN restored
            evaluated = held_out()
        ref_emb, metrics = evaluated
        metrics["n_train"] = int(len(y_train))
        model.cpu()
        metadata = {
            "format": "soartlab-run/1",
            "config": cfg.to_dict(),
            "model": model_config.to_dict(),
            "label_names": names,
            "good_index": good,
            "input_shape": list(shape),
            "normalization": normalization.to_dict(),
            "transform": cfg.transform.to_dict(),
            "distance": distance_spec(cfg.loss, cfg.p_v, cfg.p_m),
            "metrics": metrics,
            "history": history,
            "stopped": stopped,
            "stop_reason": stop_reason,
            "world_size": self.world_size,
            "backend": dist.get_backend() if self.world_size > 1 else None,
        }
        kind = "nan" if "NaN" in stop_reason else ("stopped" if stopped else "done")
        self._emit(Progress(kind, len(history), cfg.epochs, message=stop_reason or "finished"))
        return TrainResult(
            model=model,
            history=history,
            metrics=metrics,
            metadata=metadata,
            references=(ref_emb, y_train.astype(np.int64)),
            stopped=stopped,
            stop_reason=stop_reason,
            warnings=warnings,
        )


def _load_weights(model: SiameseNet, state_dict: dict) -> None:
    own = model.state_dict()
    problems = [
        f"{k}: {tuple(v.shape)} here, {tuple(state_dict[k].shape)} in the checkpoint"
        for k, v in own.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    missing = sorted(set(own) - set(state_dict))
    if problems or missing:
        raise CheckpointError(
            "The earlier model does not fit this data: "
            + "; ".join(problems + [f"missing {k}" for k in missing])
        )
    model.load_state_dict(state_dict)


# Settings that may change between an interrupted run and its resumption.
_RESUMABLE_CHANGES = ("epochs", "device")


def _state_settings(config: TrainConfig) -> dict:
    """The settings a training state must be resumed with, in their JSON form."""
    settings = json.loads(json.dumps(config.to_dict()))
    for name in _RESUMABLE_CHANGES:
        settings.pop(name)
    return settings


def _save_state(
    path: Path, model, optimizer, epoch: int, history: list[dict], config: TrainConfig
) -> None:
    """Training state after `epoch`: tensors and plain types only (weights_only loads it)."""
    buffer = io.BytesIO()
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": epoch,
            "history": json.dumps(history),
            "settings": json.dumps(_state_settings(config)),
        },
        buffer,
    )
    atomic_write_bytes(path, buffer.getvalue())


def _restore_state(
    raw: bytes, source: str, model, optimizer, config: TrainConfig
) -> tuple[int, list[dict]]:
    """Load a state written by `_save_state` into model and optimizer; (epoch, history)."""
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        saved = json.loads(state["settings"]) if "settings" in state else None
    except (RuntimeError, KeyError, ValueError, OSError, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"Training state {source} is not a valid checkpoint: {exc}") from exc
    if saved is not None:
        current = _state_settings(config)
        changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        if changed:
            raise CheckpointError(
                f"Training state {source} was written with other settings "
                f"({', '.join(f'{k}: {saved.get(k)!r} there, {current.get(k)!r} now' for k in changed)}); "
                "train into a new folder or delete the state to start afresh."
            )
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        return int(state["epoch"]), list(json.loads(state["history"]))
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"Training state {source} is not a valid checkpoint: {exc}") from exc


def train(dataset, config: TrainConfig | None = None, **kwargs: Any) -> TrainResult:
    """Train with `config` (defaults if None). kwargs go to `Trainer`."""
    return Trainer(config or TrainConfig(), **kwargs).fit(dataset)
