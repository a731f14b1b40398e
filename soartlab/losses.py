"""Contrastive loss over any distance (SOART3 gamma, Euclidean, ...), never a fixed metric."""

from __future__ import annotations

import math
from typing import Any, Protocol

import torch
from torch import nn

from soartlab.errors import SoartLabError
from soartlab.transform import GammaTransform


class PairwiseDistance(Protocol):
    """What the loss needs from a distance: row i of ``a`` against row i of ``b``."""

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # (N, e), (N, e) -> (N,)
        ...


def contrastive_terms(d: Any, target: Any, margin: float) -> Any:
    """Per-pair contrastive loss ``y·d² + (1−y)·max(margin − d, 0)²`` of distances ``d``
    ``(N,)`` and targets ``y`` (1 matched, 0 unmatched; ``(N,)`` or a scalar) → ``(N,)``.

    The one place the formula is written: torch tensors (differentiable, for
    `ContrastiveLoss`) or NumPy arrays (for `soartlab.tuning`'s view of a setting)."""
    return target * d**2 + (1 - target) * (margin - d).clip(min=0) ** 2


class ContrastiveLoss(nn.Module):
    """``mean(y·d² + (1−y)·max(margin − d, 0)²)`` with ``d = transform(distance.pairwise(e1, e2))``.

    ``y`` is 1 for a matched pair (same label) and 0 for an unmatched one: matched pairs
    are pulled to distance 0, unmatched ones pushed beyond ``margin``. ``transform`` (a
    ``GammaTransform``, or None for the raw distance) reshapes the distance for training
    only, as the margin does: the distance itself stays the raw metric that evaluation
    uses.
    """

    def __init__(
        self,
        distance: PairwiseDistance,
        margin: float = 1.0,
        transform: GammaTransform | None = None,
    ) -> None:
        super().__init__()
        if not callable(getattr(distance, "pairwise", None)):
            raise SoartLabError(
                f"ContrastiveLoss needs a distance with a pairwise(a, b) method; "
                f"got {type(distance).__name__}."
            )
        if isinstance(margin, bool) or not isinstance(margin, int | float):
            raise SoartLabError(f"Contrastive margin must be a number; got {margin!r}.")
        if not math.isfinite(margin) or margin <= 0:
            raise SoartLabError(f"Contrastive margin must be finite and > 0; got {margin!r}.")
        if transform is not None and not isinstance(transform, GammaTransform):
            raise SoartLabError(
                f"ContrastiveLoss transform must be a GammaTransform or None; "
                f"got {type(transform).__name__}."
            )
        self.distance = distance
        self.margin = float(margin)
        self.transform = transform

    def forward(self, e1: torch.Tensor, e2: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``e1``, ``e2``: ``(N, e)`` embeddings; ``target``: ``(N,)`` of 1/0 → scalar."""
        d = self.distance.pairwise(e1, e2)
        if self.transform is not None:
            d = self.transform(d)
        target = torch.as_tensor(target, device=d.device)
        if target.numel() != d.numel():
            raise SoartLabError(
                f"Contrastive target has {target.numel()} values for {d.numel()} pairs; "
                f"give one 1/0 target per pair."
            )
        # Same shape as d: an (N, 1) target must not broadcast against (N,) into (N, N).
        target = target.reshape(d.shape).to(d.dtype)
        return contrastive_terms(d, target, self.margin).mean()

    def extra_repr(self) -> str:
        return f"distance={self.distance!r}, margin={self.margin}, transform={self.transform}"
