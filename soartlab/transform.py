"""The gamma transform that turns SOART3 gamma into a training distance:

d = max(scale·gamma + offset, floor)      the article's values: scale 0.5, offset −0.25, floor 0
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, fields
from numbers import Real
from typing import Any

import numpy as np

from soartlab.errors import SoartLabError


def _is_tensor(value: Any) -> bool:
    # torch is only imported by callers that hold tensors; do not load it here.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


@dataclass(frozen=True)
class GammaTransform:
    """`d = max(scale·gamma + offset, floor)`, elementwise. The defaults are the
    article's values (`ARTICLE_TRANSFORM`)."""

    scale: float = 0.5  # slope applied to gamma
    offset: float = -0.25  # shift after scaling; moves matched pairs below the floor
    floor: float = 0.0  # smallest distance returned

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
                raise SoartLabError(
                    f"GammaTransform.{field.name} must be a finite number; got {value!r}."
                )
            object.__setattr__(self, field.name, float(value))

    def __call__(self, gamma: Any) -> Any:
        """Float → float; NumPy array → NumPy array (same shape, float dtype kept, integers
        → float64); torch tensor → torch tensor (differentiable; zero gradient below the
        floor)."""
        if _is_tensor(gamma):
            return (gamma * self.scale + self.offset).clamp(min=self.floor)
        if isinstance(gamma, Real) and not isinstance(gamma, bool):
            return max(self.scale * float(gamma) + self.offset, self.floor)
        values = np.asarray(gamma)
        if values.dtype.kind not in "iuf":
            raise SoartLabError(f"gamma must be numeric; got values of dtype {values.dtype}.")
        if values.dtype.kind != "f":
            values = values.astype(np.float64)
        scale, offset, floor = (values.dtype.type(v) for v in (self.scale, self.offset, self.floor))
        return np.maximum(values * scale + offset, floor)

    def to_dict(self) -> dict[str, float]:
        """`{"scale": ..., "offset": ..., "floor": ...}` as plain floats."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> GammaTransform:
        """Rebuild from `to_dict()` output; missing keys take the defaults, unknown keys
        and non-finite or non-numeric values raise `SoartLabError` naming the field."""
        if not isinstance(data, dict):
            raise SoartLabError(
                f"a gamma transform must be a mapping with scale, offset and floor; "
                f"got {type(data).__name__}."
            )
        known = {field.name for field in fields(cls)}
        unknown = sorted(str(key) for key in data if key not in known)
        if unknown:
            raise SoartLabError(
                f"unknown gamma transform field(s) {', '.join(unknown)}; "
                f"expected {', '.join(sorted(known))}."
            )
        return cls(**data)


# The transform the article in shared/seed/ tuned by hand for its Siamese network (scale
# 0.5, offset −0.25, floor 0: GammaTransform's defaults, which DESIGN.md fixes); what a
# run and the Tune sliders start from until the engineer tunes one.
ARTICLE_TRANSFORM = GammaTransform()
