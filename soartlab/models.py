"""The Siamese embedding networks, with their architecture and sizes taken from a config.

Two architectures map one sample to the same ``embedding_dim``-wide embedding:

- ``mlp`` (`EmbeddingNet`): the article's fully connected network on the flattened sample;
  the default for feature vectors, and for images that keep their parts in place.
- ``cnn`` (`ConvEmbeddingNet`): a few 3×3 convolution blocks (GroupNorm, ReLU, 2×2
  max-pooling), global average pooling and one linear layer. Its weights are shared over
  the image, so a defect is recognised wherever it lies, and it takes any image from 8×8
  up. Images only.

For ``mlp``, the layer attribute names (``linear1``, ``linear2``, ``linear3``, ``final``, ``relu``) and
the ``embedding_net`` wrapper are the article's, so a state_dict saved here loads with
``load_state_dict(torch.load(path))`` into the article's own classes and the other way round.

The input normalisation travels with the network (as a preprocessor travels with its
model): training, embedding and prediction all feed raw samples, and the network
normalises them first. Its mean and std are non-persistent buffers, so they move with
``.to(device)`` but stay out of the state_dict, which remains exactly the article's; they
are saved in the run record instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from numbers import Integral
from typing import Any

import torch
from torch import nn

from soartlab.data import Normalization
from soartlab.errors import CheckpointError, DataError

ARCHITECTURES = ("mlp", "cnn")
# cnn: smallest image side it is built for (three 2×2 poolings leave at least 1 pixel)
MIN_CNN_SIDE = 8

# Bounds that refuse absurd configs (from a user or a checkpoint) before any memory is
# allocated for the model.
MAX_LAYER_WIDTH = 100_000
MAX_INPUT_FEATURES = 10_000_000
MAX_PARAMETERS = 500_000_000  # 2 GB of float32 weights, the checkpoint size cap


@dataclass
class ModelConfig:
    """Sizes of the embedding network; the model is built from this and nothing else."""

    input_shape: tuple[int, ...] = (36, 39)  # one sample: (H, W) for images, (d,) for features
    hidden: tuple[int, int, int] = (512, 256, 256)  # widths of linear1, linear2, linear3
    embedding_dim: int = 128  # width of `final`, the embedding size e
    arch: str = "mlp"  # "mlp" (the article's, uses `hidden`) or "cnn" (uses `channels`)
    channels: tuple[int, ...] = (16, 32, 64, 128)  # cnn: output channels of each conv block

    def __post_init__(self) -> None:
        # JSON gives lists; keep tuples so configs compare and hash the same way.
        if isinstance(self.input_shape, list):
            self.input_shape = tuple(self.input_shape)
        if isinstance(self.hidden, list):
            self.hidden = tuple(self.hidden)
        if isinstance(self.channels, list):
            self.channels = tuple(self.channels)
        self.validate()
        # Plain ints (not NumPy's) so to_dict() is always JSON-serialisable.
        self.input_shape = tuple(int(v) for v in self.input_shape)
        self.hidden = tuple(int(v) for v in self.hidden)
        self.channels = tuple(int(v) for v in self.channels)
        self.embedding_dim = int(self.embedding_dim)

    @property
    def in_features(self) -> int:
        """Number of inputs of ``linear1``: the product of ``input_shape``."""
        return math.prod(self.input_shape)

    def layer_sizes(self) -> list[tuple[int, int]]:
        """``(in, out)`` of linear1, linear2, linear3 and final, in that order."""
        widths = [self.in_features, *self.hidden, self.embedding_dim]
        return list(zip(widths[:-1], widths[1:], strict=True))

    @property
    def in_channels(self) -> int:
        """cnn: channels of one sample: 1 for an (H, W) image, C for (C, H, W)."""
        return self.input_shape[0] if len(self.input_shape) == 3 else 1

    def num_parameters(self) -> int:
        if self.arch == "cnn":
            widths = [self.in_channels, *self.channels]
            convs = sum(
                9 * c_in * c_out + 2 * c_out
                for c_in, c_out in zip(widths, widths[1:], strict=False)
            )
            return convs + self.channels[-1] * self.embedding_dim + self.embedding_dim
        return sum(n_in * n_out + n_out for n_in, n_out in self.layer_sizes())

    def validate(self) -> None:
        """Raise `CheckpointError` for sizes no real model has, before anything is built."""
        if self.arch not in ARCHITECTURES:
            raise CheckpointError(
                f"Model config 'arch' must be one of {', '.join(ARCHITECTURES)}; got {self.arch!r}."
            )
        if not isinstance(self.input_shape, tuple) or not 1 <= len(self.input_shape) <= 3:
            raise CheckpointError(
                f"Model config 'input_shape' must be 1 to 3 positive integers such as (36, 39); "
                f"got {self.input_shape!r}."
            )
        for size in self.input_shape:
            _check_int("input_shape", size, MAX_INPUT_FEATURES)
        if self.in_features > MAX_INPUT_FEATURES:
            raise CheckpointError(
                f"Model config 'input_shape' {self.input_shape!r} gives {self.in_features} input "
                f"features; at most {MAX_INPUT_FEATURES} are allowed."
            )
        if not isinstance(self.hidden, tuple) or len(self.hidden) != 3:
            raise CheckpointError(
                f"Model config 'hidden' must be exactly three layer widths such as "
                f"(512, 256, 256); got {self.hidden!r}."
            )
        for width in self.hidden:
            _check_int("hidden", width, MAX_LAYER_WIDTH)
        _check_int("embedding_dim", self.embedding_dim, MAX_LAYER_WIDTH)
        if not isinstance(self.channels, tuple) or not 1 <= len(self.channels) <= 8:
            raise CheckpointError(
                f"Model config 'channels' must be 1 to 8 channel counts such as (16, 32, 64, 128); "
                f"got {self.channels!r}."
            )
        for width in self.channels:
            _check_int("channels", width, MAX_LAYER_WIDTH)
        if self.arch == "cnn":
            self._check_image()
        if self.num_parameters() > MAX_PARAMETERS:
            raise CheckpointError(
                f"Model config {self.to_dict()} has {self.num_parameters()} parameters; "
                f"at most {MAX_PARAMETERS} are allowed."
            )

    def _check_image(self) -> None:
        """cnn: an image (H, W) or (C, H, W), each side at least `MIN_CNN_SIDE`."""
        sides = self.input_shape[-2:]
        if len(self.input_shape) < 2 or min(sides) < MIN_CNN_SIDE:
            raise CheckpointError(
                f"The cnn architecture needs images of at least {MIN_CNN_SIDE}×{MIN_CNN_SIDE} "
                f"pixels (input shape (H, W) or (C, H, W)); got input shape "
                f"{self.input_shape}. Feature vectors and smaller images train with mlp."
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: lists for the shapes."""
        out: dict[str, Any] = {
            "arch": self.arch,
            "input_shape": list(self.input_shape),
            "hidden": list(self.hidden),
            "embedding_dim": self.embedding_dim,
        }
        if self.arch == "cnn":
            out["channels"] = list(self.channels)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> ModelConfig:
        """Build from `to_dict` output (e.g. checkpoint metadata); `CheckpointError` if invalid."""
        if not isinstance(data, dict):
            raise CheckpointError(
                f"Model config must be a mapping with keys input_shape, hidden, embedding_dim; "
                f"got {type(data).__name__}."
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(key) for key in data if key not in known)
        if unknown:
            raise CheckpointError(
                f"Model config has unknown keys {unknown}; expected only {sorted(known)}."
            )
        values = dict(data)  # without "arch": written before cnn existed, so mlp
        for name in ("input_shape", "hidden", "channels"):
            if name in values and not isinstance(values[name], list | tuple):
                raise CheckpointError(
                    f"Model config '{name}' must be a list of integers; got {values[name]!r}."
                )
        return cls(**values)


def _check_int(name: str, value: Any, upper: int) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise CheckpointError(f"Model config '{name}' must hold integers; got {value!r}.")
    if not 1 <= value <= upper:
        raise CheckpointError(
            f"Model config '{name}' must hold integers from 1 to {upper}; got {value!r}."
        )


class _NormalisedInput(nn.Module):
    """The input normalisation as non-persistent buffers (they follow ``.to(device)`` but
    stay out of the state_dict) and the check that a batch is whole samples."""

    config: ModelConfig

    def _init_normalization(self, normalization: Normalization | None) -> None:
        # () for one global mean/std (images), (in_features,) per feature (tables)
        self.register_buffer("input_mean", torch.zeros(()), persistent=False)
        self.register_buffer("input_std", torch.ones(()), persistent=False)
        self.normalization = normalization or Normalization(mean=0.0, std=1.0)

    @property
    def normalization(self) -> Normalization:
        """The input normalisation applied before the first layer."""
        mean, std = self.input_mean.cpu(), self.input_std.cpu()
        if mean.ndim == 0:
            return Normalization(mean=float(mean), std=float(std))
        return Normalization(mean=mean.tolist(), std=std.tolist())

    @normalization.setter
    def normalization(self, value: Normalization) -> None:
        # checked here too: a Normalization built in code has not been through from_dict
        value.check_width(self.config.in_features)
        mean, std = (torch.from_numpy(a) for a in value.as_float32())
        device = self.input_mean.device
        self.input_mean = mean.to(device)
        self.input_std = std.to(device)

    @property
    def in_features(self) -> int:
        return self.config.in_features

    def _normalised_rows(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as ``(N, in_features)`` normalised rows; `DataError` when its size is not
        a whole number of samples."""
        n_in = self.config.in_features
        if x.numel() % n_in != 0:
            raise DataError(
                f"Input has {tuple(x.shape)} = {x.numel()} values, not a whole number of "
                f"samples of {n_in} features; the model expects input shape "
                f"{self.config.input_shape}."
            )
        # reshape, not view: slices and transposed batches are not contiguous.
        return (x.reshape(-1, n_in) - self.input_mean) / self.input_std

    def get_embedding(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)


class EmbeddingNet(_NormalisedInput):
    """Flatten one sample and map it to an embedding: ``(N, *input_shape) -> (N, e)``.

    Linear in→h1, ReLU, h1→h2, ReLU, h2→h3, ReLU, h3→e (the article's: 1404→512→256→256→128).
    """

    def __init__(
        self, config: ModelConfig | None = None, normalization: Normalization | None = None
    ) -> None:
        super().__init__()
        self.config = config if config is not None else ModelConfig()
        self.config.validate()
        if self.config.arch != "mlp":
            raise CheckpointError(
                f"EmbeddingNet is the mlp architecture; the config asks for {self.config.arch!r} "
                "(build_model builds the right class)."
            )
        (n_in, h1), (_, h2), (_, h3), (_, emb) = self.config.layer_sizes()
        self.linear1 = nn.Linear(n_in, h1)
        self.linear2 = nn.Linear(h1, h2)
        self.linear3 = nn.Linear(h2, h3)
        self.final = nn.Linear(h3, emb)
        self.relu = nn.ReLU()
        self._init_normalization(normalization)

    @property
    def activation_ratio(self) -> int:
        """Floats the forward pass holds at once per input value, about: the first block
        works at full resolution with ``channels[0]`` channels, and its convolution,
        normalisation and activation outputs coexist (what `evaluation.embed` sizes its
        batches by)."""
        return 3 * int(self.config.channels[0]) // max(int(self.config.in_channels), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Any tensor of raw samples whose size is a multiple of ``in_features`` → ``(N, e)``."""
        x = self._normalised_rows(x)
        x = self.relu(self.linear1(x))
        x = self.relu(self.linear2(x))
        x = self.relu(self.linear3(x))
        return self.final(x)


def _group_count(channels: int) -> int:
    """GroupNorm groups: 8 where they divide the channels (as usual), else fewer."""
    return math.gcd(channels, 8)


class ConvEmbeddingNet(_NormalisedInput):
    """Convolutional embedding of an image: ``(N, H, W)`` or ``(N, C, H, W)`` → ``(N, e)``.

    One block per entry of ``config.channels``: conv 3×3 (padding 1, no bias), GroupNorm,
    ReLU, max-pool 2×2 (ceil mode, so odd sizes keep their edge); then the average over
    every position (global average pooling) and a linear layer to the embedding. GroupNorm,
    not BatchNorm: no running statistics, so training and evaluation compute the same
    function, whatever the batch size, and the state_dict holds float weights only.
    """

    def __init__(self, config: ModelConfig, normalization: Normalization | None = None) -> None:
        super().__init__()
        self.config = config
        self.config.validate()
        if self.config.arch != "cnn":
            raise CheckpointError(
                f"ConvEmbeddingNet is the cnn architecture; the config asks for "
                f"{self.config.arch!r} (build_model builds the right class)."
            )
        widths = [self.config.in_channels, *self.config.channels]
        self.blocks = nn.Sequential(
            *(
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
                    nn.GroupNorm(_group_count(c_out), c_out),
                    nn.ReLU(),
                    nn.MaxPool2d(2, ceil_mode=True),
                )
                for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
            )
        )
        self.final = nn.Linear(widths[-1], self.config.embedding_dim)
        self._init_normalization(normalization)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw images whose size is a multiple of ``in_features`` → ``(N, e)``."""
        height, width = self.config.input_shape[-2:]
        x = self._normalised_rows(x).reshape(-1, self.config.in_channels, height, width)
        # Channels-last (NHWC): faster convolutions with cuDNN and with oneDNN on the CPU
        # (bench/bench_architectures.py); `channels_last` puts the weights so too.
        x = self.blocks(x.contiguous(memory_format=torch.channels_last))
        return self.final(x.mean(dim=(2, 3)))


def channels_last(model: nn.Module) -> nn.Module:
    """``model`` with its 4-D (convolution) weights in channels-last memory order, in
    place; an mlp is unchanged. The values, and so the state_dict, are the same."""
    return model.to(memory_format=torch.channels_last)


class SiameseNet(nn.Module):
    """One embedding network (`EmbeddingNet` or `ConvEmbeddingNet`) applied to both
    inputs: ``(x1, x2) -> (e1, e2)``, each ``(N, e)``."""

    def __init__(self, embedding_net: EmbeddingNet | ConvEmbeddingNet) -> None:
        super().__init__()
        self.embedding_net = embedding_net

    @property
    def config(self) -> ModelConfig:
        return self.embedding_net.config

    @property
    def normalization(self) -> Normalization:
        return self.embedding_net.normalization

    @normalization.setter
    def normalization(self, value: Normalization) -> None:
        self.embedding_net.normalization = value

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embedding_net(x1), self.embedding_net(x2)

    def get_embedding(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding_net(x)


def build_model(
    config: ModelConfig | None = None, normalization: Normalization | None = None
) -> SiameseNet:
    """A freshly initialised `SiameseNet` of the given architecture and sizes (the
    article's by default)."""
    config = config if config is not None else ModelConfig()
    network = ConvEmbeddingNet if config.arch == "cnn" else EmbeddingNet
    return SiameseNet(network(config, normalization))


__all__ = [
    "ARCHITECTURES",
    "MAX_INPUT_FEATURES",
    "MAX_LAYER_WIDTH",
    "MAX_PARAMETERS",
    "ConvEmbeddingNet",
    "EmbeddingNet",
    "ModelConfig",
    "SiameseNet",
    "build_model",
    "channels_last",
]
