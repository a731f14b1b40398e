"""What the contrastive loss will learn from: the distances it sees, which pairs have a
gradient under a transform and margin, a transform that guarantees some do, and a short
trial training (Preview) that shows where a setting leads.

A monotone transform ``d = max(scale·gamma + offset, floor)`` never changes the order of
distances, so it cannot change ROC AUC or overlap by itself. What it changes is which
pairs the loss pulls (matched pairs above the floor) and pushes (unmatched pairs between
the floor and the margin): a pair on the floor, or an unmatched pair beyond the margin,
gives no gradient. `loss_view` reports those shares; `preview` trains a copy of the
network for a few hundred steps so the effect on separation can be seen.

The distances are taken on the network's embeddings when there is a network (it
normalises its own inputs): that is what the loss sees. Raw features are a reference.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from soartlab.config import TrainConfig
from soartlab.data import Normalization, sample_pairs, stratified_subsample
from soartlab.distances import SOART3Distance, get_distance
from soartlab.errors import SoartLabError
from soartlab.evaluation import embed
from soartlab.losses import contrastive_terms
from soartlab.models import SiameseNet
from soartlab.prepare import PreparedData
from soartlab.rows import fit_normalization, is_rows
from soartlab.separation import SeparationReport, separation_report
from soartlab.training import Outcome, Progress, Trainer
from soartlab.transform import ARTICLE_TRANSFORM, GammaTransform

# A setting learns when at least this share of matched pairs is pulled and at least this
# share of unmatched pairs is pushed (see `loss_view`): below it the gradient comes from
# a handful of pairs and the run, as the digits report showed, moves nothing.
MIN_GRADIENT_SHARE = 0.05

# `suggest_transform_for_loss`: the margin sits at this multiple of the unmatched
# quantile (measured from the floor's gamma), so the loss keeps pushing unmatched pairs
# beyond where they are now.
UNMATCHED_QUANTILE = 0.90
MARGIN_REACH = 2.0
# The fallback places every pair strictly inside (floor, margin), this share of the
# width away from either end.
FALLBACK_INSET = 0.05
# The transform's allowed ranges (soartlab.config.TRANSFORM_SETTINGS).
MAX_SCALE = 1e6
MAX_OFFSET = 1e6

SOURCE_RAW = "raw"


@dataclass(frozen=True)
class PairGammas:
    """Distances (SOART3 gamma unless said otherwise) of sampled pairs."""

    matched: np.ndarray  # (Nm,) float64, pairs of one class
    unmatched: np.ndarray  # (Nu,) float64, pairs of two classes
    source: str  # what they were computed on: "raw", or a description of the network


def _pair_distances(
    X: np.ndarray,
    labels: np.ndarray,
    model: SiameseNet | None,
    distance,
    n_pairs: int,
    seed: int,
    normalization: Normalization | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(matched (Nm,), unmatched (Nu,)) distances of ``n_pairs`` sampled pairs of rows of
    ``X`` ``(N, d)``: on ``model``'s embeddings, or on the normalised rows without one.
    Only the rows the pairs use are embedded."""
    if not is_rows(X):  # rows read on demand stay on disk: only the pairs' rows are read
        X = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
    i, j, target = sample_pairs(labels, n_pairs, seed=seed)
    rows, inverse = np.unique(np.concatenate([i, j]), return_inverse=True)
    if model is None:
        norm = normalization or fit_normalization(X, per_feature=True)
        points = norm.apply(X[rows])
    else:
        points = embed(model, X[rows])
    a, b = points[inverse[: len(i)]], points[inverse[len(i) :]]
    d = np.asarray(distance.pairwise(a, b), dtype=np.float64)
    is_matched = target > 0.5
    return d[is_matched], d[~is_matched]


def pair_gammas(
    X: np.ndarray,
    labels: np.ndarray,
    *,
    model: SiameseNet | None,
    n_pairs: int,
    seed: int,
    p_v: float = 4,
    p_m: float = 1,
    normalization: Normalization | None = None,
    source: str | None = None,
) -> PairGammas:
    """SOART3 gamma of ``n_pairs`` pairs sampled from ``X`` ``(N, d)`` raw with class ids
    ``labels`` ``(N,)`` (`data.sample_pairs`, half matched, seeded by ``seed``); pair
    (i, j) scores row i as the signal against row j as the unit.

    With ``model`` the gamma is taken between its embeddings — the distance the loss
    sees when ``model`` is the network to be trained (it normalises its own inputs).
    With ``model=None`` it is taken between the raw rows normalised by ``normalization``
    (default: fitted on ``X`` per feature; pass `Normalization.for_dataset` for images),
    and ``source`` is ``"raw"``. ``source`` names the network in the result otherwise.
    """
    distance = SOART3Distance(p_v=p_v, p_m=p_m)
    matched, unmatched = _pair_distances(X, labels, model, distance, n_pairs, seed, normalization)
    name = SOURCE_RAW if model is None else (source or "network")
    return PairGammas(matched, unmatched, name)


@dataclass(frozen=True)
class LossView:
    """What the contrastive loss makes of sampled pairs under a transform and margin."""

    pulled: float  # share of matched pairs above the floor (they have a gradient)
    pushed: float  # share of unmatched pairs above the floor and below the margin
    loss: float  # mean contrastive loss of these pairs now (losses.contrastive_terms)
    n_matched: int
    n_unmatched: int
    learns: bool  # enough pairs have a gradient (see `loss_view`)
    problem: str  # "" when it learns; else the numbers and the fix, in one sentence

    def to_dict(self) -> dict[str, float | int | bool | str]:
        return {
            "pulled": self.pulled,
            "pushed": self.pushed,
            "loss": self.loss,
            "n_matched": self.n_matched,
            "n_unmatched": self.n_unmatched,
            "learns": self.learns,
            "problem": self.problem,
        }


def _distances(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise SoartLabError(f"{name} is empty; at least one pair distance is needed.")
    if not np.isfinite(array).all():
        raise SoartLabError(f"{name} holds NaN or inf; pair distances must be finite.")
    return array


def _check_margin(margin: float, floor: float) -> None:
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not math.isfinite(margin):
        raise SoartLabError(f"margin must be a finite number; got {margin!r}.")
    if margin <= 0:
        raise SoartLabError(f"margin must be > 0; got {margin!r}.")
    if margin <= floor:
        raise SoartLabError(
            f"margin ({margin:g}) must be above the floor ({floor:g}): no unmatched pair "
            "could be pushed. Raise the margin or lower the floor."
        )


def _percent(share: float) -> str:
    if share == 0:
        return "no"
    if share == 1:
        return "every"
    return f"{100 * share:.1f} % of"


def loss_view(
    matched: np.ndarray,
    unmatched: np.ndarray,
    transform: GammaTransform | None,
    margin: float,
) -> LossView:
    """Which of the pairs with distances ``matched`` ``(Nm,)`` and ``unmatched`` ``(Nu,)``
    the loss pulls and pushes under ``transform`` and ``margin``, and the loss they give.

    ``transform=None`` is a raw distance (the Euclidean loss), with 0 as its floor.
    Rule: with a transform, the setting learns when at least `MIN_GRADIENT_SHARE` of the
    matched pairs are pulled and at least as large a share of the unmatched pairs pushed;
    a pair on the floor has no gradient whatever the others do. A raw distance moves as a
    whole, so one of the two shares at that level is enough. Vectorised: a few ms at 100k
    pairs.
    """
    d_matched = _distances(matched, "matched")
    d_unmatched = _distances(unmatched, "unmatched")
    floor = 0.0 if transform is None else transform.floor
    _check_margin(margin, floor)
    if transform is not None:
        d_matched, d_unmatched = transform(d_matched), transform(d_unmatched)
    pulled = float(np.count_nonzero(d_matched > floor)) / d_matched.size
    inside = (d_unmatched > floor) & (d_unmatched < margin)
    pushed = float(np.count_nonzero(inside)) / d_unmatched.size
    total = (
        contrastive_terms(d_matched, 1.0, margin).sum()
        + contrastive_terms(d_unmatched, 0.0, margin).sum()
    )
    loss = float(total) / (d_matched.size + d_unmatched.size)
    enough = (pulled >= MIN_GRADIENT_SHARE, pushed >= MIN_GRADIENT_SHARE)
    learns = all(enough) if transform is not None else any(enough)
    problem = "" if learns else _problem(pulled, pushed, transform, margin)
    return LossView(
        pulled=pulled,
        pushed=pushed,
        loss=loss,
        n_matched=int(d_matched.size),
        n_unmatched=int(d_unmatched.size),
        learns=learns,
        problem=problem,
    )


def _problem(pulled: float, pushed: float, transform: GammaTransform | None, margin: float) -> str:
    least = f"{100 * MIN_GRADIENT_SHARE:g} %"
    if transform is None:
        return (
            f"Under the raw distance with margin {margin:g}, {_percent(pulled)} matched pairs "
            f"are above 0 and {_percent(pushed)} unmatched pairs inside the margin: nothing "
            f"would be learnt (at least {least} of either need a gradient). Raise the margin."
        )
    return (
        f"Under scale {transform.scale:g}, offset {transform.offset:g}, floor "
        f"{transform.floor:g} and margin {margin:g}, {_percent(pulled)} matched pairs are "
        f"above the floor and {_percent(pushed)} unmatched pairs between the floor and the "
        f"margin: nothing would be learnt (at least {least} of each need a gradient). Use "
        "Suggest (python -m soartlab suggest), or lower the offset."
    )


def default_transform(
    matched: np.ndarray, unmatched: np.ndarray, margin: float = 1.0, floor: float = 0.0
) -> tuple[GammaTransform, bool]:
    """The transform a run trains with when the user tuned none, on the distances the loss
    will see: ``(transform, suggested)``. The article's values (with ``floor``) when the
    loss learns from them here — on the demo set they reached 0.960 held-out accuracy
    after 3 epochs against 0.928 with Suggest's, on sklearn's digits 0.978 against 0.967 —
    else `suggest_transform_for_loss`, which always learns. The one place this default
    is decided: training (`workflow.training_setup`) and the Tune page start from it."""
    article = replace(ARTICLE_TRANSFORM, floor=floor)
    if loss_view(matched, unmatched, article, margin).learns:
        return article, False
    return suggest_transform_for_loss(matched, unmatched, margin, floor), True


def suggest_transform_for_loss(
    matched: np.ndarray,
    unmatched: np.ndarray,
    margin: float = 1.0,
    floor: float = 0.0,
) -> GammaTransform:
    """A transform under which the loss learns from these gammas ``matched`` ``(Nm,)``
    and ``unmatched`` ``(Nu,)`` (the distances the loss will see, see `pair_gammas`).

    Rule: gamma g0 = min(0, smallest gamma) goes to ``floor`` — gamma's own least value
    is 0, a residual in a single component — and g0 + 2·(q_u − g0) to ``margin``, with
    q_u the 90th percentile of unmatched gamma. Every matched pair above g0 is pulled
    toward 0, and every unmatched pair below twice q_u pushed out (at least 90 %): the
    window is wide, like the article's (0.5 to 2.5 on the demo set's gamma), so the loss
    keeps separating the pairs instead of stopping where they are now. (A window fitted
    tightly to today's quantiles — the matched 10th percentile on the floor, the
    unmatched 90th at the margin — stalled on the demo set: 45 % held-out accuracy after
    3 epochs against 64 %.) If q_u ≤ g0, or the line does not learn by `loss_view`'s
    rule, or it leaves the allowed ranges: every pair is placed strictly inside (floor,
    margin) — the pooled minimum and maximum go to `FALLBACK_INSET` of the width inside
    either end (a spread of 0 goes to the middle). Either way ``loss_view(matched,
    unmatched, result, margin).learns`` is True.
    """
    matched_g = _distances(matched, "matched")
    unmatched_g = _distances(unmatched, "unmatched")
    if isinstance(floor, bool) or not isinstance(floor, int | float) or not math.isfinite(floor):
        raise SoartLabError(f"floor must be a finite number; got {floor!r}.")
    _check_margin(margin, floor)
    low = min(0.0, float(matched_g.min()), float(unmatched_g.min()))
    high = low + MARGIN_REACH * (float(np.quantile(unmatched_g, UNMATCHED_QUANTILE)) - low)
    if high > low:
        scale = (margin - floor) / (high - low)
        line = _transform(scale, floor - scale * low, floor)
        if line is not None and loss_view(matched_g, unmatched_g, line, margin).learns:
            return line
    return _inside(np.concatenate([matched_g, unmatched_g]), margin, floor)


def _transform(scale: float, offset: float, floor: float) -> GammaTransform | None:
    """The transform, or None when it leaves the ranges a config allows."""
    if 0 < scale <= MAX_SCALE and abs(offset) <= MAX_OFFSET and math.isfinite(offset):
        return GammaTransform(scale=scale, offset=offset, floor=floor)
    return None


def _inside(values: np.ndarray, margin: float, floor: float) -> GammaTransform:
    """A line that maps every value strictly inside (floor, margin)."""
    width = margin - floor
    middle = floor + width / 2
    low, high = float(values.min()), float(values.max())
    centre = (low + high) / 2
    # Half the inner width over half the spread; bounded so offset stays in its range.
    scale = MAX_SCALE
    if high > low:
        scale = min(scale, (1 - 2 * FALLBACK_INSET) * width / (high - low))
    if centre != 0:
        scale = min(scale, (MAX_OFFSET - abs(middle)) / abs(centre))
    scale = max(scale, np.nextafter(0.0, 1.0))
    return GammaTransform(scale=float(scale), offset=float(middle - scale * centre), floor=floor)


def training_pairs(
    config: TrainConfig,
    X: np.ndarray,
    labels: np.ndarray,
    model: SiameseNet,
    n_pairs: int,
    *,
    source: str = "network",
) -> PairGammas:
    """Distances of ``n_pairs`` pairs of rows of ``X`` ``(N, d)`` (class ids ``labels``
    ``(N,)``) on ``model``'s embeddings under the config's loss distance (SOART3 gamma
    with its orders, or Euclidean), seeded by ``config.seed``: what the loss will see
    when training ``model``."""
    if config.loss == "soart3":
        return pair_gammas(
            X,
            labels,
            model=model,
            n_pairs=n_pairs,
            seed=config.seed,
            p_v=config.p_v,
            p_m=config.p_m,
            source=source,
        )
    distance = get_distance(config.loss)
    matched, unmatched = _pair_distances(X, labels, model, distance, n_pairs, config.seed, None)
    return PairGammas(matched, unmatched, source)


def training_view(config: TrainConfig, pairs: PairGammas) -> LossView:
    """`loss_view` of ``pairs`` under the config's loss: its transform and margin for
    SOART3, the raw distance and margin for Euclidean."""
    transform = config.transform if config.loss == "soart3" else None
    return loss_view(pairs.matched, pairs.unmatched, transform, config.margin)


def check_learnable(
    config: TrainConfig,
    data: PreparedData,
    model: SiameseNet,
    n_pairs: int = 2000,
    *,
    pairs: PairGammas | None = None,
) -> LossView:
    """The loss's view of ``model``'s embeddings (the network before training) under
    ``config``, on ``n_pairs`` pairs of the training split (or the given ``pairs``,
    `training_pairs` of the same); raises `SoartLabError` with ``view.problem`` when
    nothing would be learnt (see `loss_view`)."""
    if pairs is None:
        pairs = training_pairs(config, data.x_train, data.y_train, model, n_pairs)
    view = training_view(config, pairs)
    if not view.learns:
        raise SoartLabError(view.problem)
    return view


@dataclass(frozen=True)
class PreviewResult:
    """Where a few hundred training steps with a setting lead (see `preview`)."""

    before: PairGammas  # held pairs on the network before the preview steps
    after: PairGammas  # the same pairs on the trained copy
    before_report: SeparationReport
    report: SeparationReport  # separation of ``after`` (ROC AUC, overlap, ...)
    first_loss: float  # loss of the first step (nan when none ran)
    last_loss: float  # loss of the last step
    steps: int  # steps done
    seconds: float
    cancelled: bool  # stop_event was set: fewer steps than asked
    outcome: Outcome  # as `Trainer.train_epoch` ended (NOT_LEARNING: no gradient at all)


def preview(
    model: SiameseNet,
    data: PreparedData,
    config: TrainConfig,
    *,
    steps: int = 300,
    max_samples: int = 2000,
    pairs: int = 2000,
    stop_event: threading.Event | None = None,
    callback: Callable[[Progress], None] | None = None,
) -> PreviewResult:
    """Train a deep copy of ``model`` (never ``model`` itself) for ``steps`` steps of
    ``config.batch_size`` pairs from a stratified subsample of at most ``max_samples``
    rows of the training split, with the config's loss, transform, margin, lr and seed,
    through the training loop (`Trainer.train_epoch`). Returns the distances of ``pairs``
    held pairs (the held-out split) before and after, their separation, and the loss at
    the first and last step. Setting ``stop_event`` ends it at the next step
    (``cancelled``). ``callback`` gets the steps' `Progress`."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise SoartLabError(f"Preview steps must be a positive integer; got {steps!r}.")
    if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 2:
        raise SoartLabError(f"Preview max_samples must be an integer ≥ 2; got {max_samples!r}.")
    started = time.perf_counter()
    stop_event = stop_event or threading.Event()
    short = replace(config, epochs=1, pairs_per_epoch=steps * config.batch_size)
    losses: list[float] = []

    def on_progress(progress: Progress) -> None:
        losses.append(progress.loss)
        if callback is not None:
            callback(progress)

    trainer = Trainer(short, callback=on_progress, stop_event=stop_event)
    rows = stratified_subsample(data.y_train, max_samples, config.seed)
    trial = copy.deepcopy(model).to(trainer.device)
    x = torch.as_tensor(data.x_train[rows], device=trainer.device)
    # Held pairs: from the held-out split, which the preview never trains on.
    held = (data.x_test, data.y_test)
    before = training_pairs(config, *held, trial, pairs, source="before preview")
    _, _, outcome, _ = trainer.train_epoch(
        trial, trainer.optimizer(trial), x, data.y_train[rows], epoch=1
    )
    trial.eval().cpu()
    after = training_pairs(config, *held, trial, pairs, source="after preview")
    return PreviewResult(
        before=before,
        after=after,
        before_report=separation_report(before.matched, before.unmatched),
        report=separation_report(after.matched, after.unmatched),
        first_loss=losses[0] if losses else float("nan"),
        last_loss=losses[-1] if losses else float("nan"),
        steps=len(losses),
        seconds=time.perf_counter() - started,
        cancelled=outcome is Outcome.STOPPED,
        outcome=outcome,
    )


__all__ = [
    "MIN_GRADIENT_SHARE",
    "LossView",
    "PairGammas",
    "PreviewResult",
    "check_learnable",
    "loss_view",
    "pair_gammas",
    "preview",
    "stratified_subsample",
    "suggest_transform_for_loss",
    "training_pairs",
    "training_view",
]
