"""Augmentation of inspection images in training batches: flips, 90° rotations, small
shifts, brightness/contrast jitter — each on or off.

Applied on the fly to every pair batch, on the device the batch is on, with torch ops
and a seeded generator (`Trainer.train_epoch`), so the same seed gives the same run.
The default, ``auto``, turns all four on for the cnn: they suit parts whose orientation does not matter
— a patch of surface, a bolt head seen from above; a part with a fixed layout (the demo
plate: the hole left, the edge right) wants them off, which is what ``auto`` gives the
mlp. Feature vectors have no pixels to move: augmentation is refused for them.

The setting's text form (``--augment``, the run record): ``auto``, ``none``, or a comma
list of `AUGMENTATIONS` such as ``flip,shift``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

from soartlab.errors import SoartLabError

AUGMENTATIONS = ("flip", "rot90", "shift", "jitter")
AUTO, NONE = "auto", "none"
# A shift moves an image by up to this share of its side (at least 1 pixel), edges
# reflected: enough to teach position, too little to push a defect out of the frame.
MAX_SHIFT_SHARE = 0.125
BRIGHTNESS = 0.2  # brightness offset up to ± this many standard deviations of the batch
CONTRAST = 0.2  # contrast factor from 1 − this to 1 + this, around each image's mean


@dataclass(frozen=True)
class Augmentation:
    """Which augmentations a run applies; all off by default."""

    flip: bool = False  # mirror left-right and/or top-bottom, each with probability 1/2
    rot90: bool = False  # rotate by a random multiple of 90° (180° only for non-square images)
    shift: bool = False  # move by up to MAX_SHIFT_SHARE of each side, edges reflected
    jitter: bool = False  # brightness offset and contrast factor per image

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def to_spec(self) -> str:
        """The text form: the names of those on, comma-separated, or ``none``."""
        names = [f.name for f in fields(self) if getattr(self, f.name)]
        return ",".join(names) or NONE

    @classmethod
    def all(cls) -> Augmentation:
        return cls(**{name: True for name in AUGMENTATIONS})

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augmented copies of ``images`` ``(N, H, W)`` or ``(N, C, H, W)`` (raw values),
        each image drawn on its own; the same ``generator`` state gives the same result."""
        x = images
        n, device = x.shape[0], x.device
        if n == 0 or not self.active:
            return x

        def coin() -> torch.Tensor:  # (N,) bool, one fair coin per image
            return torch.rand(n, generator=generator, device=device) < 0.5

        def per_image(mask: torch.Tensor) -> torch.Tensor:
            return mask.view(n, *([1] * (x.ndim - 1)))

        if self.flip:
            x = torch.where(per_image(coin()), x.flip(-1), x)
            x = torch.where(per_image(coin()), x.flip(-2), x)
        if self.rot90:
            if x.shape[-1] == x.shape[-2]:
                turns = torch.randint(0, 4, (n,), generator=generator, device=device)
                rotated = x
                for k in range(1, 4):
                    rotated = torch.where(
                        per_image(turns == k), torch.rot90(x, k, (-2, -1)), rotated
                    )
                x = rotated
            else:  # a quarter turn would change the shape: half turns only
                x = torch.where(per_image(coin()), torch.rot90(x, 2, (-2, -1)), x)
        if self.shift:
            x = _shift(x, generator)
        if self.jitter:
            x = _jitter(x, generator)
        return x


def _shift(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by its own whole-pixel offset, edges reflected."""
    n, height, width = x.shape[0], x.shape[-2], x.shape[-1]
    reach_y = max(1, min(int(height * MAX_SHIFT_SHARE), height - 1))
    reach_x = max(1, min(int(width * MAX_SHIFT_SHARE), width - 1))
    flat = x.reshape(n, -1, height, width)
    padded = F.pad(flat, (reach_x, reach_x, reach_y, reach_y), mode="reflect")
    dy = torch.randint(0, 2 * reach_y + 1, (n,), generator=generator, device=x.device)
    dx = torch.randint(0, 2 * reach_x + 1, (n,), generator=generator, device=x.device)
    rows = dy[:, None] + torch.arange(height, device=x.device)  # (N, H)
    cols = dx[:, None] + torch.arange(width, device=x.device)  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(flat.shape[1], device=x.device)[None, :, None, None]
    moved = padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]
    return moved.reshape(x.shape)


def _jitter(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Contrast around each image's mean, then a brightness offset scaled by the batch's
    spread (raw values may be 0–1 or 0–255)."""
    n = x.shape[0]
    shape = (n, *([1] * (x.ndim - 1)))
    spread = x.float().std().clamp_min(1e-6).to(x.dtype)
    contrast = 1 + CONTRAST * (2 * torch.rand(shape, generator=generator, device=x.device) - 1)
    offset = BRIGHTNESS * (2 * torch.rand(shape, generator=generator, device=x.device) - 1)
    mean = x.mean(dim=tuple(range(1, x.ndim)), keepdim=True)
    return (x - mean) * contrast.to(x.dtype) + mean + offset.to(x.dtype) * spread


def parse_augment(text: str) -> str:
    """The canonical text form of an ``augment`` setting (``auto``, ``none`` or names in
    `AUGMENTATIONS` order); `SoartLabError` naming what is allowed otherwise."""
    if not isinstance(text, str):
        raise SoartLabError(_expected(text))
    words = [w.strip().lower() for w in text.split(",") if w.strip()]
    if words in ([AUTO], [NONE], []):
        return words[0] if words else NONE
    unknown = [w for w in words if w not in AUGMENTATIONS]
    if unknown or len(set(words)) != len(words):
        raise SoartLabError(_expected(text))
    return ",".join(name for name in AUGMENTATIONS if name in words)


def _expected(text) -> str:
    return (
        f"augment must be auto, none, or a comma-separated list of {', '.join(AUGMENTATIONS)} "
        f"(e.g. flip,shift); got {text!r}."
    )


def resolve_augmentation(text: str, arch: str, input_shape: tuple[int, ...]) -> Augmentation:
    """The augmentation a run applies: ``auto`` is all of them for the cnn (parts whose
    orientation does not matter) and none for the mlp; feature vectors get none, and a
    named augmentation for them is refused (`SoartLabError`)."""
    spec = parse_augment(text)
    is_image = len(input_shape) >= 2
    if spec == AUTO:
        return Augmentation.all() if arch == "cnn" and is_image else Augmentation()
    chosen = Augmentation(**{name: name in spec.split(",") for name in AUGMENTATIONS})
    if chosen.active and not is_image:
        raise SoartLabError(
            f"augment {spec!r} needs images; this data is feature vectors of "
            f"{input_shape[0]} values, which cannot be flipped, turned or shifted. "
            "Use --augment none (or auto)."
        )
    return chosen


def augmented_examples(
    images: np.ndarray, augmentation: Augmentation, variants: int = 4, seed: int = 0
) -> np.ndarray:
    """``variants`` augmented copies of each image of ``images`` ``(n, H, W)``:
    ``(n, variants, H, W)`` float32, as training draws them (a preview)."""
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    generator = torch.Generator().manual_seed(int(seed))
    out = torch.stack([augmentation(x, generator) for _ in range(variants)], dim=1)
    return out.numpy()


def preview_examples(
    dataset, augment: str, arch: str = "cnn", samples: int = 4, variants: int = 5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[str], Augmentation]:
    """What the Train page's preview shows for an ``augment`` setting: one image of each
    of the first ``samples`` classes ``(n, H, W)``, ``variants`` augmented draws of each
    ``(n, variants, H, W)``, their class names, and the augmentation resolved for ``arch``
    (``auto`` shown as the cnn would train)."""
    from soartlab import data as D

    shape = tuple(D.input_shape(dataset))
    augmentation = resolve_augmentation(augment, "cnn" if arch == "auto" else arch, shape)
    x, y = D.to_arrays(dataset)
    names = D.label_names(dataset)
    rows = [int(np.flatnonzero(y == c)[0]) for c in np.unique(y)][:samples]
    images = x[rows].reshape(len(rows), *shape[-2:]) if len(shape) == 2 else x[rows]
    drawn = augmented_examples(images, augmentation, variants, seed)
    return images, drawn, [names[y[r]] for r in rows], augmentation


__all__ = [
    "AUGMENTATIONS",
    "Augmentation",
    "augmented_examples",
    "parse_augment",
    "preview_examples",
    "resolve_augmentation",
]
