"""Training epoch time of the cnn beside the article's mlp on the demo set (36×39).

Both train through the real step loop (`Trainer.train_epoch`: pair batch, optional
augmentation, SiameseNet forward — bf16 autocast on CUDA —, SOART3 contrastive loss,
backward, AdamW step) on the same pairs; the rounds alternate between the networks so
that all see the same machine load, and the ratio is the median of the per-round ratios.
`python bench/bench_architectures.py [--device cpu|cuda] [--pairs N]` prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from soartlab.augment import resolve_augmentation
from soartlab.config import TrainConfig
from soartlab.data import Normalization
from soartlab.models import ModelConfig, build_model, channels_last
from soartlab.training import Trainer

PAIRS = 2560  # one "epoch" here: 20 steps of 128 pairs
ROUNDS = 3
# name → (arch, augment)
SETUPS = {"mlp": ("mlp", "none"), "cnn": ("cnn", "none"), "cnn_augmented": ("cnn", "auto")}


def _setup(name: str, x: np.ndarray, device: str, pairs: int):
    arch, augment = SETUPS[name]
    config = TrainConfig(
        arch=arch, augment=augment, pairs_per_epoch=pairs, batch_size=128, device=device
    )
    trainer = Trainer(config)
    torch.manual_seed(0)
    model_config = ModelConfig(input_shape=(36, 39), arch=arch)
    model = build_model(model_config, Normalization.fit(x)).to(trainer.device)
    if arch == "cnn":
        channels_last(model)
    trainer.augmentation = resolve_augmentation(augment, arch, (36, 39))
    return trainer, model, trainer.optimizer(model)


def run(images: np.ndarray, labels: np.ndarray, device: str = "cpu", pairs: int = PAIRS) -> dict:
    x = images.reshape(len(images), -1).astype(np.float32)
    runs = {name: _setup(name, x, device, pairs) for name in SETUPS}
    x_dev = {name: torch.as_tensor(x, device=runs[name][0].device) for name in SETUPS}
    times: dict[str, list[float]] = {name: [] for name in SETUPS}
    for round_ in range(ROUNDS + 1):  # the first round warms up (kernels, allocator)
        for name, (trainer, model, optimizer) in runs.items():
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            trainer.train_epoch(model, optimizer, x_dev[name], labels, epoch=round_ + 1)
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            if round_:
                times[name].append(time.perf_counter() - start)
    result: dict = {
        "pairs_per_epoch": pairs,
        "batch": 128,
        "device": device,
        "threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()),
    }
    for name in SETUPS:
        seconds = float(np.median(times[name]))
        result[name] = {"epoch_seconds": seconds, "pairs_per_s": pairs / seconds}
    for name in ("cnn", "cnn_augmented"):
        ratios = [a / b for a, b in zip(times[name], times["mlp"], strict=True)]
        result[f"{name}_over_mlp"] = float(np.median(ratios))
    return result


if __name__ == "__main__":
    from common import demo_arrays

    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--pairs", type=int, default=PAIRS)
    parser.add_argument("--samples", type=int, default=3000)
    args = parser.parse_args()
    X, y = demo_arrays(args.samples)
    print(json.dumps(run(X, y, args.device, args.pairs), indent=2))
