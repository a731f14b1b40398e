"""Contrastive training of the Siamese embedding network.

`Trainer.fit` is a loop over epochs on prepared arrays (`soartlab.prepare`): it knows
nothing of files, the UI or the run record. It reports through a progress callback,
checks a stop flag, hands the training state to a callback after every good epoch (see
`TrainingState`), and returns a `TrainResult` whose `Outcome` says how it ended. It is
rank-aware: under `torch.distributed` (see `soartlab.distributed`) each rank
draws its own share of pairs (seeded by seed, epoch and rank) and `batch_size // world`
pairs per step, so one optimiser step still sees `batch_size` pairs; gradients are
averaged by DistributedDataParallel, and the loss, stop flag and NaN flag are reduced
across ranks, so every rank stops together. Rank 0 alone writes the training state;
on resume it reads the state and sends it to the other ranks.
"""

from __future__ import annotations

import copy
import enum
import io
import json
import math
import os
import pickle
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from soartlab import distributed
from soartlab.architecture import resolve_architecture
from soartlab.augment import Augmentation, resolve_augmentation
from soartlab.config import TrainConfig
from soartlab.data import sample_pairs, stratified_subsample, validation_split
from soartlab.distances import get_distance
from soartlab.errors import CheckpointError, SoartLabError
from soartlab.evaluation import classification_metrics, classify, embed
from soartlab.files import atomic_write_bytes
from soartlab.losses import ContrastiveLoss
from soartlab.models import ModelConfig, SiameseNet, build_model, channels_last
from soartlab.prepare import PreparedData, prepare
from soartlab.rows import fit_normalization, is_rows, on_device


def _loss_and_distance(config: TrainConfig) -> tuple[ContrastiveLoss, Any]:
    """The loss to train with, and the distance held-out parts are classified by: the
    loss's distance without the transform (the transform belongs to the loss; its floor
    would only create ties)."""
    params = {"p_v": config.p_v, "p_m": config.p_m} if config.loss == "soart3" else {}
    distance = get_distance(config.loss, **params)
    transform = config.transform if config.loss == "soart3" else None
    return ContrastiveLoss(distance, margin=config.margin, transform=transform), distance


def evaluation_distance(config: TrainConfig) -> Any:
    """The distance a run trained with ``config`` classifies by (see `_loss_and_distance`)."""
    return _loss_and_distance(config)[1]


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SoartLabError("device 'cuda' was asked for but no CUDA GPU is available.")
    return torch.device(device)


class Outcome(enum.Enum):
    """How a training run ended."""

    FINISHED = "finished"  # every epoch trained
    STOPPED = "stopped"  # the user stopped it; the weights at that step are kept
    NAN_LOSS = "nan_loss"  # the loss was not finite; the last good epoch's weights restored
    NOT_LEARNING = "not_learning"  # a whole epoch without a gradient (see GRADIENT_FLOOR)
    # the training loss fell while validation accuracy stayed below raw-pixel kNN or the
    # majority class (see memorising_reason); the best epoch's weights are kept to inspect
    MEMORISING = "memorising"
    # good parts only: nothing to learn from, so not trained; the run scores parts with the
    # untrained network and a threshold from the good parts (workflow.good_only_run)
    GOOD_ONLY = "good_only"


# Rows of each split the raw-kNN baseline uses when the data is read on demand (see
# `Trainer.baselines`): at most this many, and at most this much float32 per split.
RAW_BASELINE_ROWS = 10_000
RAW_BASELINE_BYTES = 32 * 2**20

# An epoch in which every step's total gradient norm stays at or below this moved no
# weight: the transform put every pair on the floor or beyond the margin. Training then
# stops as NOT_LEARNING, since further epochs would change nothing either.
GRADIENT_FLOOR = 1e-12

# Memorising is judged once this many epochs have a validation accuracy, and only when the
# best of them stays more than this many standard errors (of a proportion on the
# validation rows) below the better of raw-pixel kNN and the majority class: a shortfall
# within the noise of a small validation part is not memorising.
MEMORISING_MIN_EPOCHS = 2
MEMORISING_STANDARD_ERRORS = 1.0
# ... and by at least this much in accuracy: on sets the raw pixels already classify well
# (digits 98 %, the breast-cancer measurements 92 %) a network a point or two below them
# has learnt the classes, and sending its user to the cnn would mislead.
MEMORISING_MARGIN = 0.05
# ... and only when the training loss fell to at most this share of the first epoch's: a
# network that fits its training pairs. A loss that barely moved is a run not trained
# enough (a short run on the demo set), not one that memorised.
MEMORISING_LOSS_SHARE = 0.5


@dataclass(frozen=True)
class Validation:
    """The validation part of the training split and what to beat on it."""

    fit_rows: np.ndarray  # positions in the training split the run trains on
    val_rows: np.ndarray  # positions that choose the epoch to keep (empty: no validation)
    raw_knn: float | None  # kNN accuracy on normalised raw features, fit rows as references
    majority: float | None  # share of the most common class among the validation rows
    majority_class: str

    @property
    def active(self) -> bool:
        return len(self.val_rows) > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": int(len(self.val_rows)),
            "raw_knn": self.raw_knn,
            "majority": self.majority,
            "majority_class": self.majority_class,
        }


def memorising_reason(history: list[dict], validation: Validation, arch: str, augment: str) -> str:
    """Why a run memorised, in words naming what to try, or "" when it did not: the
    training loss fell to at most `MEMORISING_LOSS_SHARE` of the first epoch's while the best validation
    accuracy stayed clearly below raw-pixel kNN or the majority-class rate on the same
    validation rows (by `MEMORISING_STANDARD_ERRORS` and `MEMORISING_MARGIN`)."""
    scored = [row for row in history if row.get("val_accuracy") is not None]
    if not validation.active or len(scored) < MEMORISING_MIN_EPOCHS:
        return ""
    first, last = history[0]["loss"], history[-1]["loss"]
    if not last <= MEMORISING_LOSS_SHARE * first:
        return ""
    best = max(row["val_accuracy"] for row in scored)
    bar, what = max(
        (validation.raw_knn, "raw-pixel nearest neighbours"),
        (validation.majority, f"calling every part {validation.majority_class!r}"),
    )
    noise = math.sqrt(max(bar * (1 - bar), 0.0) / len(validation.val_rows))
    if best >= bar - max(MEMORISING_STANDARD_ERRORS * noise, MEMORISING_MARGIN):
        return ""
    tries = []
    if arch != "cnn":
        tries.append("the cnn architecture (--arch cnn; images only)")
    if augment == "none" or augment.count(",") < 3:
        tries.append("augmentation (--augment flip,rot90,shift,jitter)")
    tries += ["more data", "weight decay (--weight-decay)"]
    return (
        f"memorising: the training loss fell from {first:.4f} to {last:.4f} but the best "
        f"validation accuracy, {best:.3f}, stayed below {what} ({bar:.3f}) on the same "
        f"{len(validation.val_rows)} validation parts: the network learnt the training "
        f"parts, not what tells the classes apart. Try {', '.join(tries[:-1])} or "
        f"{tries[-1]}. The best epoch's model is saved for inspection."
    )


@dataclass(frozen=True)
class Baselines:
    """Held-out accuracy without training, on the same split and with the same kNN rule
    (distance, k) as the trained metrics: what training added is measured against these."""

    raw_knn: float  # kNN on the raw features, normalised as the network normalises them
    untrained: float  # kNN on the embeddings of the network before this training

    def to_dict(self) -> dict[str, float]:
        return {"raw_knn": self.raw_knn, "untrained": self.untrained}


@dataclass
class Progress:
    """One progress event for the callback."""

    kind: str  # "step" | "epoch" | "resumed" | "end"
    epoch: int  # 1-based
    epochs: int
    step: int = 0  # 1-based within the epoch
    steps_per_epoch: int = 0
    loss: float = float("nan")
    record: dict | None = None  # the epoch's history row, for "epoch"
    message: str = ""
    outcome: Outcome | None = None  # for "end"

    @property
    def fraction(self) -> float:
        """Share of the whole run done, 0..1."""
        if self.outcome is Outcome.FINISHED:
            return 1.0
        per_epoch = max(self.steps_per_epoch, 1)
        return min(1.0, ((self.epoch - 1) + self.step / per_epoch) / max(self.epochs, 1))


@dataclass
class TrainResult:
    model: SiameseNet  # on the CPU, in eval mode; carries its input normalisation
    history: list[dict]  # one row per trained epoch
    metrics: dict  # held-out classification_metrics of the kept weights, plus n_train
    references: tuple[np.ndarray, np.ndarray]  # train-split embeddings (N, e), labels (N,)
    outcome: Outcome
    stop_reason: str = ""  # the outcome in words when it is not FINISHED
    baselines: Baselines | None = None  # held-out accuracy before training (see Baselines)
    world_size: int = 1
    backend: str | None = None
    arch: str = "mlp"  # the network trained (resolved from "auto")
    augment: str = "none"  # the augmentation applied (resolved from "auto")

    @property
    def stopped(self) -> bool:
        return self.outcome is not Outcome.FINISHED


@dataclass
class EpochEnd:
    """What the state callback gets after every good epoch (rank 0 only)."""

    epoch: int
    model: SiameseNet
    optimizer: torch.optim.Optimizer
    history: list[dict]
    # the best validation epoch so far and its weights (None: no validation part), so a
    # resumed run keeps the same epoch as one that ran through
    best_epoch: int | None = None
    best_state: dict | None = None


@dataclass
class Resume:
    """A training state to continue from: weights and optimiser after ``epoch``."""

    epoch: int
    history: list[dict]  # one row per epoch trained so far
    model_state: dict
    optimizer_state: dict
    best_epoch: int | None = None  # the best validation epoch so far, with its weights
    best_state: dict | None = None

    def apply(self, model: SiameseNet, optimizer: torch.optim.Optimizer) -> list[dict]:
        """Load the state into ``model`` and ``optimizer``; the history so far."""
        if len(self.history) != self.epoch:
            raise CheckpointError(
                f"The training state says epoch {self.epoch} but holds {len(self.history)} "
                "history rows; delete it to start afresh."
            )
        try:
            model.load_state_dict(self.model_state)
            optimizer.load_state_dict(self.optimizer_state)
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(f"The training state does not fit this model: {exc}") from exc
        return list(self.history)


def _last_improvement(history: list[dict]) -> int:
    """The epoch of the last strict rise in validation accuracy in ``history`` (0: none)."""
    best, epoch = None, 0
    for row in history:
        value = row.get("val_accuracy")
        if value is not None and (best is None or value > best):
            best, epoch = value, row["epoch"]
    return epoch


def pair_seed(seed: int, epoch: int, rank: int) -> int:
    """Seed for one rank's pairs in one epoch: distinct per (seed, epoch, rank)."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def initial_model(
    config: TrainConfig, data: PreparedData, warm_start: SiameseNet | None = None
) -> SiameseNet:
    """The network training starts from: freshly initialised (seeded by ``config.seed``)
    with a normalisation fitted on the training split, or a copy of ``warm_start`` — an
    earlier round's model, whose weights and normalisation are kept."""
    if warm_start is not None and config.arch == "auto":
        arch = warm_start.config.arch  # a next round trains the network it continues from
    else:
        arch = resolve_architecture(config.arch, data)
    model_config = ModelConfig(
        input_shape=data.input_shape,
        hidden=tuple(config.hidden),
        embedding_dim=config.embedding_dim,
        arch=arch,
        channels=tuple(config.channels),
    )
    if warm_start is not None:
        if warm_start.config != model_config:
            raise CheckpointError(
                f"The earlier model does not fit this data: it was built for "
                f"{warm_start.config.to_dict()}, this data and these settings need "
                f"{model_config.to_dict()}."
            )
        return copy.deepcopy(warm_start).cpu()
    torch.manual_seed(config.seed)
    normalization = fit_normalization(data.x_train, per_feature=not data.is_image)
    return build_model(model_config, normalization)


class Trainer:
    """Trains a SiameseNet on prepared data with the contrastive loss.

    callback(Progress) is called on every step and epoch (on rank 0 only when
    distributed), once with kind "resumed" when training continues from a saved state,
    and once with kind "end". Setting `stop_event` ends training at the next step and
    keeps the weights of that step; a non-finite loss stops with the epoch named and
    restores the weights from the end of the last good epoch.
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
        self.loss_fn, self.eval_distance = _loss_and_distance(config)
        # set by `fit` for the network and data it trains; `train_epoch` applies it
        self.augmentation = Augmentation()
        self.embedded_rows = 0  # rows this process embedded for evaluation (split by rank)

    def fit(
        self,
        model: SiameseNet,
        data: PreparedData,
        *,
        resume: Resume | None = None,
        on_epoch_end: Callable[[EpochEnd], None] | None = None,
    ) -> TrainResult:
        """Train ``model`` (see `initial_model`) on ``data``; continue after
        ``resume.epoch`` when given. ``on_epoch_end`` gets the state after every good
        epoch (on rank 0), e.g. `TrainingState.save`.

        Pairs are drawn from the fit rows of the training split; its validation rows
        (`data.validation_split`, ``config.val_size``) score every epoch, keep the best
        epoch's weights and stop training after ``config.patience`` epochs without a
        better score. The held-out split is scored once, at the end, on the weights kept."""
        cfg = self.config
        model.to(self.device)
        if model.config.arch == "cnn":
            channels_last(model)
        self.augmentation = resolve_augmentation(
            cfg.augment, model.config.arch, model.config.input_shape
        )
        # Before a saved state is loaded: ``model`` is still the network this run starts from.
        baselines = self.baselines(model, data)
        validation = self.validation(model, data)
        optimizer = self.optimizer(model)
        history: list[dict] = []
        if resume is not None:
            history = resume.apply(model, optimizer)
            self._emit(
                Progress(
                    "resumed",
                    resume.epoch + 1,
                    cfg.epochs,
                    message=f"resuming from the saved training state after epoch {resume.epoch}",
                )
            )
        # Wrapped after the restore: DDP also broadcasts rank 0's weights when it starts.
        wrapped = self._wrap(model)
        x_fit = data.x_train
        if validation.active:  # rows read on demand stay a view; arrays are copied once
            x_fit = _select(data.x_train, validation.fit_rows)
        x_dev = on_device(x_fit, self.device)
        y_fit = data.y_train[validation.fit_rows]
        last_good = copy.deepcopy(model.state_dict())
        # (validation accuracy, epoch, weights) of the best epoch so far; a resumed run
        # starts from the weights it resumed with
        # A tie keeps the later epoch (trained longer on the same evidence: a validation
        # part that every epoch classifies alike would otherwise keep epoch 1); patience
        # counts from the last epoch that did strictly better.
        best: tuple[float, int, dict] | None = None
        improved = 0  # the epoch of the last strict improvement
        if resume is not None and resume.best_epoch is not None and resume.best_state:
            row = history[resume.best_epoch - 1]
            best = (row["val_accuracy"], resume.best_epoch, resume.best_state)
            improved = _last_improvement(history)
        elif history and history[-1].get("val_accuracy") is not None:
            # a state saved before it kept its best epoch: continue from the last
            best = (history[-1]["val_accuracy"], history[-1]["epoch"], last_good)
            improved = history[-1]["epoch"]
        outcome, reason, early = Outcome.FINISHED, "", ""
        for epoch in range(len(history) + 1, cfg.epochs + 1):  # resumed: after its epochs
            started = time.perf_counter()
            mean_loss, seen, outcome, reason = self.train_epoch(
                wrapped, optimizer, x_dev, y_fit, epoch
            )
            if outcome is Outcome.NAN_LOSS:
                model.load_state_dict(last_good)
            if outcome is Outcome.NAN_LOSS or seen == 0:
                break
            row = {"epoch": epoch, "loss": mean_loss}
            if validation.active:
                row.update(self._validate(model, data, validation))
            row["seconds"] = time.perf_counter() - started
            history.append(row)
            if outcome is Outcome.FINISHED:
                last_good = copy.deepcopy(model.state_dict())
                if validation.active and (best is None or row["val_accuracy"] >= best[0]):
                    if best is None or row["val_accuracy"] > best[0]:
                        improved = epoch
                    best = (row["val_accuracy"], epoch, last_good)
                if on_epoch_end is not None and self.rank == 0:
                    on_epoch_end(
                        EpochEnd(
                            epoch,
                            model,
                            optimizer,
                            history,
                            None if best is None else best[1],
                            None if best is None else best[2],
                        )
                    )
            self._emit(Progress("epoch", epoch, cfg.epochs, 1, 1, mean_loss, record=row))
            if outcome is not Outcome.FINISHED:
                break
            if cfg.patience and best is not None and epoch - improved >= cfg.patience:
                early = (
                    f"stopped early after epoch {epoch}: validation accuracy has not "
                    f"improved for {cfg.patience} epoch(s)"
                )
                break
        kept = None
        if outcome is Outcome.FINISHED and best is not None:
            model.load_state_dict(best[2])
            kept = best[1]
            reason = memorising_reason(
                history, validation, model.config.arch, self.augmentation.to_spec()
            )
            if reason:
                outcome = Outcome.MEMORISING
        if self.world_size > 1:
            dist.barrier()
        references, metrics = self._evaluate(model, data)
        metrics["n_train"] = int(len(data.y_train))
        metrics["kept_epoch"] = kept if kept is not None else len(history)
        metrics["validation"] = {
            **validation.to_dict(),
            "best_accuracy": None if best is None else best[0],
            "early_stop": early,
        }
        model.eval().cpu()
        self._emit(
            Progress(
                "end",
                len(history),
                cfg.epochs,
                message=reason or early or "finished",
                outcome=outcome,
            )
        )
        return TrainResult(
            model=model,
            history=history,
            metrics=metrics,
            references=(references, data.y_train.astype(np.int64)),
            outcome=outcome,
            stop_reason=reason,
            baselines=baselines,
            world_size=self.world_size,
            backend=dist.get_backend() if self.world_size > 1 else None,
            arch=model.config.arch,
            augment=self.augmentation.to_spec(),
        )

    def validation(self, model: SiameseNet, data: PreparedData) -> Validation:
        """The validation part of ``data``'s training split (``config.val_size``, seeded
        by ``config.seed``) and the figures memorising is judged against: kNN on the raw
        features (normalised as ``model`` normalises, Euclidean, fit rows as references)
        and the majority class, both on the validation rows."""
        n_train = len(data.y_train)
        split = validation_split(data.y_train, self.config.val_size, self.config.seed)
        if split is None:
            empty = np.zeros(0, dtype=np.int64)
            # None, not NaN: the figures go into run.json, which is strict JSON
            return Validation(np.arange(n_train), empty, None, None, "")
        fit_rows, val_rows = split
        normalization = model.normalization
        # read on demand: the raw-kNN figure from a stratified sample, as in `baselines`
        raw_fit = self._raw_sample(data, data.y_train, fit_rows)
        raw_val = self._raw_sample(data, data.y_train, val_rows)
        predicted, _ = classify(
            normalization.apply(data.x_train[raw_fit]),
            data.y_train[raw_fit],
            normalization.apply(data.x_train[raw_val]),
            get_distance("euclidean"),
            k=self.config.knn_k,
            n_classes=len(data.label_names),
        )
        y_raw = data.y_train[raw_val]
        y_val = data.y_train[val_rows]
        counts = np.bincount(y_val, minlength=len(data.label_names))
        return Validation(
            fit_rows,
            val_rows,
            raw_knn=float(np.mean(predicted == y_raw)),
            majority=float(counts.max() / len(y_val)),
            majority_class=data.label_names[int(counts.argmax())],
        )

    def _validate(self, model: SiameseNet, data: PreparedData, validation: Validation) -> dict:
        """The current weights on the validation rows, fit rows as references: the history
        row's ``val_accuracy``, ``val_escape_rate``, ``val_overkill_rate`` (averaged over
        ranks, so every rank keeps the same epoch)."""
        fit = self._embed(model, _select(data.x_train, validation.fit_rows))
        val = self._embed(model, _select(data.x_train, validation.val_rows))
        predicted, _ = classify(
            fit,
            data.y_train[validation.fit_rows],
            val,
            self.eval_distance,
            k=self.config.knn_k,
            n_classes=len(data.label_names),
        )
        scores = classification_metrics(
            data.y_train[validation.val_rows],
            predicted,
            list(data.label_names),
            data.good_index,
        )
        values = [scores["accuracy"], scores["escape_rate"], scores["overkill_rate"]]
        values = [v / self.world_size for v in self._all_reduce(values)]
        return dict(
            zip(("val_accuracy", "val_escape_rate", "val_overkill_rate"), values, strict=True)
        )

    def optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        """The optimiser `train_epoch` steps: AdamW at the config's learning rate and
        weight decay (with no decay it is Adam). Fused: one kernel for all parameters,
        several times faster on the CPU than a loop over them, which Preview's few-second
        budget needs."""
        return torch.optim.AdamW(
            model.parameters(),
            lr=self.config.lr,
            weight_decay=self.config.weight_decay,
            fused=True,
        )

    def train_epoch(
        self,
        wrapped: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        x_dev: torch.Tensor,
        labels: np.ndarray,
        epoch: int,
    ) -> tuple[float, int, Outcome, str]:
        """One epoch of ``config.pairs_per_epoch`` fresh pairs of the rows of ``x_dev``
        ``(N, d)`` (on `device`) with class ids ``labels`` ``(N,)``: (mean loss over all
        ranks, pairs seen here, outcome, reason). A stop or a non-finite loss ends it early
        (every rank together); an epoch whose every step had a total gradient norm at or
        below `GRADIENT_FLOOR` ends as NOT_LEARNING. The one step loop: `fit` and
        `soartlab.tuning.preview` both train through it."""
        cfg = self.config
        share = max(cfg.pairs_per_epoch // self.world_size, 1)
        # Each rank takes its part of a step's batch: one optimiser step sees batch_size
        # pairs whatever the number of ranks, so a run behaves like a single-process one.
        batch = max(cfg.batch_size // self.world_size, 1)
        steps = math.ceil(share / batch)
        i, j, target = (
            torch.as_tensor(a, device=self.device)
            for a in sample_pairs(
                labels, share, cfg.matched_fraction, seed=pair_seed(cfg.seed, epoch, self.rank)
            )
        )
        wrapped.train()
        # augmentation draws: seeded per (seed, epoch, rank), apart from the pairs' stream
        generator = torch.Generator(device=self.device)
        generator.manual_seed(pair_seed(cfg.seed, epoch, self.rank) ^ 0x5EED)
        shape = (-1, *self._input_shape(wrapped))
        # bf16 autocast on CUDA only: the CPU keeps float32 (slower there in bf16)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")
        loss_sum, seen = 0.0, 0
        outcome, reason = Outcome.FINISHED, ""
        # kept on the device: one read at the end of the epoch, not a sync per step
        largest_gradient = torch.zeros((), device=self.device)
        for step in range(steps):
            part = slice(step * batch, (step + 1) * batch)
            x1, x2 = x_dev[i[part]], x_dev[j[part]]
            if self.augmentation.active:
                x1 = self.augmentation(x1.reshape(shape), generator)
                x2 = self.augmentation(x2.reshape(shape), generator)
            with autocast:
                e1, e2 = wrapped(x1, x2)
            # the loss in float32: SOART3's logs and ratios need the precision
            loss = self.loss_fn(e1.float(), e2.float(), target[part])
            stop, bad = self._flags(self.stop_event.is_set(), not torch.isfinite(loss).item())
            if bad:
                outcome, reason = (
                    Outcome.NAN_LOSS,
                    f"loss became NaN in epoch {epoch}, step {step + 1}/{steps}",
                )
                break
            if stop:
                outcome, reason = (
                    Outcome.STOPPED,
                    f"stopped by the user in epoch {epoch}, step {step + 1}/{steps}",
                )
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            gradients = [p.grad for p in wrapped.parameters() if p.grad is not None]
            if gradients:
                norm = torch.nn.utils.get_total_norm(gradients).to(largest_gradient.dtype)
                largest_gradient = torch.maximum(largest_gradient, norm)
            optimizer.step()
            n = len(target[part])
            loss_sum += loss.item() * n
            seen += n
            self._emit(Progress("step", epoch, cfg.epochs, step + 1, steps, loss.item()))
        total_loss, total_seen, gradient = self._all_reduce(
            [loss_sum, float(seen), float(largest_gradient.item())]
        )
        mean_loss = total_loss / max(total_seen, 1.0)
        if outcome is Outcome.FINISHED and gradient <= GRADIENT_FLOOR:
            outcome, reason = (
                Outcome.NOT_LEARNING,
                f"not learning: in epoch {epoch} no step had a gradient (largest total "
                f"gradient norm {gradient:.1e} over {steps} steps; loss {mean_loss:.4f}), so "
                "no weight moved. The transform leaves every pair on the floor or beyond the "
                "margin: use Suggest (python -m soartlab suggest) or lower the offset.",
            )
        return mean_loss, seen, outcome, reason

    @staticmethod
    def _input_shape(wrapped: torch.nn.Module) -> tuple[int, ...]:
        net = wrapped.module if hasattr(wrapped, "module") else wrapped
        return tuple(net.config.input_shape)

    def _evaluate(self, model: SiameseNet, data: PreparedData) -> tuple[np.ndarray, dict]:
        """The current weights on the held-out split, the training split as references:
        (train embeddings (N, e), classification_metrics). Under torchrun each rank
        embeds and classifies its share of the rows, and every rank gets the whole."""
        references = self._embed(model, data.x_train)
        queries = self._embed(model, data.x_test)
        return references, self._held_out_metrics(references, queries, data)

    def _raw_sample(self, data: PreparedData, labels: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``rows`` (positions into ``labels``, a split's class ids) for a raw-feature kNN
        figure: all of them for an array; for rows read on demand a stratified sample
        (`RAW_BASELINE_ROWS`, `RAW_BASELINE_BYTES`), since raw rows are d wide and
        brute-force kNN between all of them would cost more than the training."""
        if not is_rows(data.x_train):
            return rows
        width = data.x_train.shape[1]
        most = max(
            2 * len(data.label_names), min(RAW_BASELINE_ROWS, RAW_BASELINE_BYTES // (4 * width))
        )
        return rows[stratified_subsample(labels[rows], most, self.config.seed)]

    def _share(self, n: int) -> slice:
        """This rank's contiguous share of ``n`` rows (all of them in one process)."""
        bounds = np.linspace(0, n, self.world_size + 1).round().astype(int)
        return slice(int(bounds[self.rank]), int(bounds[self.rank + 1]))

    def _gather(self, rows: np.ndarray) -> np.ndarray:
        """Every rank's ``rows`` (k_r, ...) in rank order (itself in one process)."""
        if self.world_size == 1:
            return rows
        device = self.device if dist.get_backend() == "nccl" else torch.device("cpu")
        return distributed.all_gather_rows(rows, device)

    def _embed(self, model: SiameseNet, X) -> np.ndarray:
        """Embeddings (N, e) of the samples ``X`` (N, d) (an array or rows read on demand),
        in batches, this rank's share only, gathered."""
        share = self._share(len(X))
        # rows read on demand stay a view: `embed` reads them a batch at a time
        part = X.subset(np.arange(share.start, share.stop)) if is_rows(X) else X[share]
        mine = embed(model, part, device=self.device)
        self.embedded_rows += share.stop - share.start
        return self._gather(mine)

    def _held_out_metrics(
        self,
        references: np.ndarray,
        queries: np.ndarray,
        data: PreparedData,
        distance=None,
        *,
        y_train: np.ndarray | None = None,
        y_test: np.ndarray | None = None,
    ) -> dict:
        """`classification_metrics` of the held-out rows ``queries`` ``(N_test, f)`` by kNN
        (``knn_k`` neighbours under ``distance``, default the evaluation distance) among
        ``references`` ``(N_train, f)``: the one kNN rule behind the trained metrics and
        both baselines. Each rank classifies its share of the queries. ``y_train``,
        ``y_test``: the classes of subsampled rows (default: the whole split's)."""
        y_train = data.y_train if y_train is None else y_train
        y_test = data.y_test if y_test is None else y_test
        share = self._share(len(queries))
        predicted, _ = classify(
            references,
            y_train,
            queries[share],
            distance or self.eval_distance,
            k=self.config.knn_k,
            n_classes=len(data.label_names),
        )
        predicted = self._gather(predicted)
        return classification_metrics(y_test, predicted, list(data.label_names), data.good_index)

    def baselines(self, model: SiameseNet, data: PreparedData) -> Baselines:
        """Held-out accuracy before training, same split and ``knn_k``: kNN on the raw
        features under ``model``'s normalisation by Euclidean distance (the usual raw-pixel
        baseline: SOART3 gamma between raw pixel vectors scored 0.22 on the demo set, below
        calling every part good, which would flatter any trained run), and kNN on
        ``model``'s embeddings under the evaluation distance (the network before training;
        for a warm start, the earlier round's model this round starts from).

        For a large source (rows read on demand) both baselines take the same stratified
        sample of each split (`_raw_sample`)."""
        normalization = model.normalization
        train_rows = self._raw_sample(data, data.y_train, np.arange(len(data.y_train)))
        test_rows = self._raw_sample(data, data.y_test, np.arange(len(data.y_test)))
        raw = self._held_out_metrics(
            normalization.apply(data.x_train[train_rows]),
            normalization.apply(data.x_test[test_rows]),
            data,
            get_distance("euclidean"),
            y_train=data.y_train[train_rows],
            y_test=data.y_test[test_rows],
        )
        # the same parts as the raw figure: on a large source the untrained network's
        # embeddings have no structure for the nearest-neighbour index to use, and all
        # of them against all would cost more than the training
        untrained = self._held_out_metrics(
            self._embed(model, _select(data.x_train, train_rows)),
            self._embed(model, _select(data.x_test, test_rows)),
            data,
            y_train=data.y_train[train_rows],
            y_test=data.y_test[test_rows],
        )
        return Baselines(raw_knn=float(raw["accuracy"]), untrained=float(untrained["accuracy"]))

    # -- ranks -----------------------------------------------------------------
    def _emit(self, progress: Progress) -> None:
        if self.callback is not None and self.rank == 0:
            self.callback(progress)

    def _flags(self, stop: bool, bad: bool) -> tuple[bool, bool]:
        """(stop, bad) of any rank: one collective per step, so every rank stops together."""
        if self.world_size == 1:
            return stop, bad
        stop_sum, bad_sum = self._all_reduce([float(stop), float(bad)])
        return stop_sum > 0, bad_sum > 0

    def _all_reduce(self, values: list[float]) -> list[float]:
        """Sum a few floats over ranks (identity in a single process)."""
        if self.world_size == 1:
            return values
        device = self.device if dist.get_backend() == "nccl" else torch.device("cpu")
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def _wrap(self, model: SiameseNet) -> torch.nn.Module:
        if self.world_size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index or 0] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)


def _select(X, rows: np.ndarray):
    """The rows ``rows`` of ``X``: a view when ``X`` is read on demand, else a copy."""
    return X.subset(rows) if is_rows(X) else X[rows]


class TrainingState:
    """The per-epoch training state in one file, so an interrupted run resumes exactly:
    weights, optimiser, epoch, history and the settings it must be resumed with. Tensors
    and plain types only, so ``weights_only`` loading reads it."""

    # Settings that may change between an interrupted run and its resumption.
    RESUMABLE_CHANGES = ("epochs", "device", "target_escape")  # the last: no effect on weights

    def __init__(self, path: str | Path, config: TrainConfig, data_fingerprint: str) -> None:
        self.path = Path(path)
        self.settings = json.loads(json.dumps(config.to_dict()))
        for name in self.RESUMABLE_CHANGES:
            self.settings.pop(name)
        # a state trained on other data must not be resumed on this data
        self.settings["data_fingerprint"] = data_fingerprint

    def save(self, end: EpochEnd) -> None:
        buffer = io.BytesIO()
        torch.save(
            {
                "model": end.model.state_dict(),
                "optimizer": end.optimizer.state_dict(),
                "epoch": end.epoch,
                "history": json.dumps(end.history),
                "settings": json.dumps(self.settings),
                # the best epoch's weights, when it is not the last (else the same tensors)
                "best_epoch": -1 if end.best_epoch is None else int(end.best_epoch),
                "best": {}
                if end.best_state is None or end.best_epoch == end.epoch
                else end.best_state,
            },
            buffer,
        )
        atomic_write_bytes(self.path, buffer.getvalue())

    def load(self) -> Resume | None:
        """The saved state (rank 0 reads the file and sends it to the other ranks, so other
        machines need not see it), or None when there is none."""
        rank, world_size = distributed.rank_world()
        raw = self.path.read_bytes() if rank == 0 and self.path.is_file() else b""
        if world_size > 1:
            device = (
                torch.device("cuda", torch.cuda.current_device())
                if dist.get_backend() == "nccl"
                else torch.device("cpu")
            )
            raw = distributed.broadcast_bytes(raw, device=device)
        return self._parse(raw) if raw else None

    def _parse(self, raw: bytes) -> Resume:
        try:
            state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
            saved = json.loads(state["settings"])
            epoch = int(state["epoch"])
            best_epoch = int(state.get("best_epoch", -1))
            resume = Resume(
                epoch,
                list(json.loads(state["history"])),
                state["model"],
                state["optimizer"],
                None if best_epoch < 1 else best_epoch,
                state.get("best") or (state["model"] if best_epoch == epoch else None),
            )
        except (
            RuntimeError,
            KeyError,
            ValueError,
            TypeError,
            OSError,
            pickle.UnpicklingError,
        ) as exc:
            raise CheckpointError(
                f"Training state {self.path} is not a valid checkpoint: {exc}"
            ) from exc
        if saved.get("data_fingerprint") != self.settings["data_fingerprint"]:
            raise CheckpointError(
                f"Training state {self.path} was trained on other data (the data's "
                "fingerprint differs); train into a new folder or delete the state."
            )
        changed = sorted(
            k for k in set(saved) | set(self.settings) if saved.get(k) != self.settings.get(k)
        )
        if changed:
            raise CheckpointError(
                f"Training state {self.path} was written with other settings "
                f"({', '.join(f'{k}: {saved.get(k)!r} there, {self.settings.get(k)!r} now' for k in changed)}); "
                "train into a new folder or delete the state to start afresh."
            )
        return resume


def train(dataset, config: TrainConfig | None = None, **kwargs: Any) -> TrainResult:
    """Prepare ``dataset``, build the initial model and train it with ``config``
    (defaults if None). kwargs go to `Trainer`."""
    config = config or TrainConfig()
    config.validate()
    data = prepare(dataset, config.test_size, config.seed, config.good_class)
    return Trainer(config, **kwargs).fit(initial_model(config, data), data)
