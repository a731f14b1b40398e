"""Which embedding network a run trains: ``mlp`` or ``cnn`` (see `soartlab.models`).

``auto`` (the default) proposes one from the data, cheaply and the same way every time:

- feature vectors: ``mlp`` (the cnn needs pixels);
- images of more than `LARGE_IMAGE_PIXELS` pixels (above 64×64): ``cnn``. The mlp's first
  layer grows with the image (a 256×256 image gives it 33 million weights to fit from a
  few thousand parts), and crops that large are mostly surface, where a defect can lie
  anywhere: the cnn's filters, shared over the image, find it wherever it is;
- smaller images: ``mlp``, the article's network, which does well and fast where every
  part sits in the same place (the demo plate: 0.95). When defects move around a small
  image, the mlp memorises the training parts and the run says so (outcome
  ``memorising``, naming ``--arch cnn``).

The resolved name is what the run record and the checkpoint keep.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from soartlab.errors import SoartLabError
from soartlab.models import MIN_CNN_SIDE

LARGE_IMAGE_PIXELS = 64 * 64


@dataclass(frozen=True)
class Proposal:
    """The proposed architecture and why, in words for the user."""

    arch: str
    reason: str


def propose_architecture(data) -> Proposal:
    """The architecture ``auto`` resolves to for ``data`` (a `PreparedData`)."""
    shape = tuple(data.input_shape)
    if len(shape) < 2:
        return Proposal("mlp", "feature vectors: the fully connected network")
    if min(shape[-2:]) < MIN_CNN_SIDE:
        return Proposal("mlp", f"images smaller than {MIN_CNN_SIDE}×{MIN_CNN_SIDE} pixels")
    pixels = int(np.prod(shape[-2:]))
    if pixels > LARGE_IMAGE_PIXELS:
        return Proposal("cnn", f"images of more than {LARGE_IMAGE_PIXELS} pixels")
    return Proposal("mlp", f"images of at most {LARGE_IMAGE_PIXELS} pixels")


def resolve_architecture(arch: str, data) -> str:
    """``mlp`` or ``cnn`` for a run on ``data`` (a `PreparedData`): ``auto`` →
    `propose_architecture`; ``cnn`` for feature vectors is refused (`SoartLabError`)."""
    if arch == "auto":
        return propose_architecture(data).arch
    if arch == "cnn" and len(tuple(data.input_shape)) < 2:
        raise SoartLabError(
            f"--arch cnn needs images; this data is feature vectors of "
            f"{data.input_shape[0]} values. Train it with --arch mlp (or auto)."
        )
    if arch == "cnn" and min(data.input_shape[-2:]) < MIN_CNN_SIDE:
        raise SoartLabError(
            f"--arch cnn needs images of at least {MIN_CNN_SIDE}×{MIN_CNN_SIDE} pixels; these "
            f"are {'×'.join(map(str, data.input_shape))}. Train them with --arch mlp."
        )
    if arch not in ("mlp", "cnn"):
        raise SoartLabError(f"arch must be one of auto, mlp, cnn; got {arch!r}.")
    return arch


__all__ = [
    "LARGE_IMAGE_PIXELS",
    "Proposal",
    "propose_architecture",
    "resolve_architecture",
]
