"""5. Training: time of one epoch with the SOART3 contrastive loss against the Euclidean
loss the article calls "Siamese-128", on the same pairs, same batches, same initial weights.

The loop is the one `soartlab.training.Trainer` runs per step (gather the pair batch,
SiameseNet forward, `ContrastiveLoss` over the raw distance with the run's transform,
backward, Adam step), without the per-epoch held-out evaluation, so the ratio is the cost
of the loss itself. CPU only: no GPU in this task.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from soartlab.distances import get_distance
from soartlab.losses import ContrastiveLoss
from soartlab.models import build_model
from soartlab.transform import ARTICLE_TRANSFORM

BATCH = 128
STEPS = 20  # one "epoch" here: 20 steps of 128 pairs = 2,560 pairs
ROUNDS = 3
# Loss name → the loss as training builds it: the raw distance, and for SOART3 the
# article's transform.
LOSSES = {
    "soart3": lambda: ContrastiveLoss(get_distance("soart3"), transform=ARTICLE_TRANSFORM),
    "euclidean": lambda: ContrastiveLoss(get_distance("euclidean")),
}


def sample_pairs(labels: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, ...]:
    """Half matched (same label), half unmatched pairs, as training draws them."""
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    i = rng.integers(len(labels), size=n)
    j = np.empty(n, dtype=np.int64)
    target = (rng.random(n) < 0.5).astype(np.float32)
    for k in range(n):
        same = by_class[int(labels[i[k]])]
        if target[k]:
            j[k] = same[rng.integers(len(same))]
        else:
            while True:
                j[k] = rng.integers(len(labels))
                if labels[j[k]] != labels[i[k]]:
                    break
    return i, j, target


def epoch(model, optimizer, loss_fn, x, i, j, target) -> float:
    start = time.perf_counter()
    for step in range(STEPS):
        sl = slice(step * BATCH, (step + 1) * BATCH)
        e1, e2 = model(x[i[sl]], x[j[sl]])
        loss = loss_fn(e1, e2, target[sl])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def profile_step(model, loss_fn, x, i, j, target) -> list[dict]:
    """Top operators by self CPU time over a few SOART3 steps (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for step in range(5):
            sl = slice(step * BATCH, (step + 1) * BATCH)
            e1, e2 = model(x[i[sl]], x[j[sl]])
            loss = loss_fn(e1, e2, target[sl])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    return [
        {
            "op": e.key,
            "self_ms": e.self_cpu_time_total / 1e3 / 5,
            "share": e.self_cpu_time_total / total,
        }
        for e in events[:8]
    ]


def run(images: np.ndarray, labels: np.ndarray) -> tuple[dict, torch.nn.Module]:
    x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32))
    i, j, target = sample_pairs(labels, BATCH * STEPS, seed=0)
    i_t, j_t, t_t = (torch.as_tensor(a) for a in (i, j, target))
    models, optimizers, losses = {}, {}, {}
    for name, make_loss in LOSSES.items():
        torch.manual_seed(0)
        models[name] = build_model()
        optimizers[name] = torch.optim.Adam(models[name].parameters(), lr=1e-3)
        losses[name] = make_loss()
    times: dict[str, list[float]] = {name: [] for name in LOSSES}
    for _ in range(ROUNDS):  # alternate, so both see the same machine load
        for name in LOSSES:
            args = (models[name], optimizers[name], losses[name], x, i_t, j_t, t_t)
            times[name].append(epoch(*args))
    pairs = BATCH * STEPS
    result = {
        "pairs_per_epoch": pairs,
        "batch": BATCH,
        "threads": torch.get_num_threads(),
        "device": "cpu",
        "cuda_available": torch.cuda.is_available(),
    }
    for name in LOSSES:
        seconds = float(np.median(times[name]))
        result[name] = {"epoch_seconds": seconds, "pairs_per_s": pairs / seconds}
    result["ratio"] = result["soart3"]["epoch_seconds"] / result["euclidean"]["epoch_seconds"]
    result["profile_soart3"] = profile_step(models["soart3"], losses["soart3"], x, i_t, j_t, t_t)
    return result, models["soart3"]


if __name__ == "__main__":
    import json

    from common import demo_arrays

    X, y = demo_arrays(5000)
    print(json.dumps(run(X, y)[0], indent=2))
