"""Argument checks and input conversions shared by the metric, the distances and the
nearest-neighbour search: each raises `SoartLabError` naming the argument, what was
expected and what was received."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch

from soartlab.errors import SoartLabError


def check_order(name: str, p: Any) -> float:
    """A Minkowski order `name`: a positive number or inf, as a float."""
    if isinstance(p, bool) or not isinstance(p, Real) or math.isnan(p) or p <= 0:
        raise SoartLabError(f"{name} must be a positive number (or inf); got {p!r}.")
    return float(p)


def check_eps(eps: Any) -> float:
    """SOART3's `eps`: a positive finite number, as a float."""
    if isinstance(eps, bool) or not isinstance(eps, Real) or not math.isfinite(eps) or eps <= 0:
        raise SoartLabError(f"eps must be a positive finite number; got {eps!r}.")
    return float(eps)


def check_k(k: Any, n_references: int, references: str = "len(R)") -> int:
    """A neighbour count: an integer from 1 to `n_references`, the length of the argument
    the message calls `references`."""
    if isinstance(k, bool) or not isinstance(k, Integral) or not 1 <= k <= n_references:
        raise SoartLabError(
            f"k must be an integer from 1 to {references} = {n_references}; got {k!r}."
        )
    return int(k)


def _numpy_float(a: Any) -> np.ndarray:
    """NumPy array of float32 (float32/float16 input) or float64 (anything else)."""
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise SoartLabError(f"expected numeric values; got an array of dtype {a.dtype}.")
    dtype = np.float32 if a.dtype.kind == "f" and a.dtype.itemsize <= 4 else np.float64
    return np.ascontiguousarray(a, dtype=dtype)


def as_tensor_pair(
    a: Any, b: Any, names: tuple[str, str] = ("y", "x")
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Both inputs as floating tensors of one dtype and device.

    Returns `(a, b, tensor_out)`: `tensor_out` is False when neither input was a tensor,
    in which case the tensors share memory with float32/float64 NumPy arrays. Integer
    input becomes float64; float32 stays float32.
    """
    a_is_tensor, b_is_tensor = isinstance(a, torch.Tensor), isinstance(b, torch.Tensor)
    if not (a_is_tensor or b_is_tensor):
        return torch.from_numpy(_numpy_float(a)), torch.from_numpy(_numpy_float(b)), False
    if a_is_tensor and b_is_tensor and a.device != b.device:
        raise SoartLabError(
            f"{names[0]} is on {a.device} and {names[1]} on {b.device}; "
            "both must be on the same device."
        )
    device = a.device if a_is_tensor else b.device
    a = a if a_is_tensor else torch.from_numpy(_numpy_float(a)).to(device)
    b = b if b_is_tensor else torch.from_numpy(_numpy_float(b)).to(device)
    dtype = torch.promote_types(a.dtype, b.dtype)
    if not dtype.is_floating_point:
        if dtype.is_complex:
            raise SoartLabError(f"expected real values; got tensors of dtype {dtype}.")
        dtype = torch.float64
    return a.to(dtype), b.to(dtype), True


def to_output(t: torch.Tensor, tensor_out: bool) -> Any:
    """`t` itself when the caller gave tensors, else a NumPy array (the NumPy-in →
    NumPy-out rule of `as_tensor_pair`)."""
    return t if tensor_out else t.detach().cpu().numpy()
