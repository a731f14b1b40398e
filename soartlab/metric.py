"""The SOART3 metric: sensitivity `beta`, log residual size `yita` and residual spread
`gamma` of a signal `y` measured against a unit (reference) `x`.

    beta  = (x·y + eps) / (x·x + eps)
    r     = y − beta·x
    yita  = log(1 + ||r||_p_m)
    gamma = log(1 + ||r||_p_m) − log(1 + ||r||_p_v)

Both NumPy arrays and torch tensors are accepted; NumPy in gives NumPy out (computed with
torch on the CPU, which is multi-threaded and fuses the residual into one pass), torch in
gives torch out on the same device, differentiable.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from soartlab.checks import as_tensor_pair, check_eps, check_order, to_output
from soartlab.errors import SoartLabError

COMPONENTS = ("gamma", "yita", "beta")
DEFAULT_MAX_CHUNK_BYTES = 64 * 2**20
# Row-wise scoring on the CPU works through blocks of rows this large (1 MiB: a float32
# block of 2,048 rows of 128), which stay in the core's cache between passes.
_CPU_ROW_BLOCK_BYTES = 2**20


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Dot product over the last axis; einsum runs as a batched matmul, which on the CPU
    is several times faster than `torch.linalg.vecdot`."""
    return torch.einsum("...k,...k->...", a, b)


def soart3(
    y: Any, x: Any, p_v: float = 4, p_m: float = 1, eps: float = 1e-4
) -> tuple[Any, Any, Any]:
    """SOART3 of signal `y` against unit `x`, row by row.

    Shapes: `y`, `x` both `(d,)` → three Python floats (0-d tensors for torch input);
    both `(N, d)` → three `(N,)` arrays, row i of `y` scored against row i of `x`.
    NumPy in → NumPy out (integers promoted to float64, float32 kept); torch in → torch
    out, differentiable; gradients are finite (zero) where the residual vanishes, e.g.
    `y == x` or `y == 0`.

    Returns `(beta, yita, gamma)`.
    """
    p_v, p_m, eps = check_order("p_v", p_v), check_order("p_m", p_m), check_eps(eps)
    y_t, x_t, tensor_out = as_tensor_pair(y, x)
    if y_t.shape != x_t.shape or y_t.ndim not in (1, 2):
        raise SoartLabError(
            f"y and x must have the same shape, (d,) or (N, d); got y {tuple(y_t.shape)} "
            f"and x {tuple(x_t.shape)}."
        )
    if y_t.shape[-1] == 0:
        raise SoartLabError("y and x must have at least one component (d >= 1); got d = 0.")
    differentiable = torch.is_grad_enabled() and (y_t.requires_grad or x_t.requires_grad)
    if not differentiable and y_t.ndim == 2 and not y_t.is_cuda:
        beta, m, v = _rows_in_blocks(y_t, x_t, p_v, p_m, eps)
    else:
        beta = (_dot(x_t, y_t) + eps) / (_dot(x_t, x_t) + eps)
        residual = y_t - beta.unsqueeze(-1) * x_t
        if differentiable:
            # vector_norm's backward is zero (not NaN) where the norm is zero: no guard needed.
            m, v = (torch.linalg.vector_norm(residual, ord=p, dim=-1) for p in (p_m, p_v))
        else:
            m, v = _block_norms(residual.abs_(), [p_m, p_v])
    yita = torch.log1p(m)
    gamma = yita - torch.log1p(v)
    if y_t.ndim == 1 and not tensor_out:
        return float(beta), float(yita), float(gamma)
    return tuple(to_output(t, tensor_out) for t in (beta, yita, gamma))


def _rows_in_blocks(
    y: torch.Tensor, x: torch.Tensor, p_v: float, p_m: float, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(beta, ||r||_p_m, ||r||_p_v)` of `(N, d)` rows on the CPU without autograd, a block
    of rows at a time through one reused residual buffer: the residual of a block stays
    in cache, where one `(N, d)` residual would be written to and re-read from memory by
    every pass (and freshly allocated on every call)."""
    n, d = y.shape
    rows = max(1, min(n, _CPU_ROW_BLOCK_BYTES // max(1, d * y.element_size())))
    beta, m, v = (y.new_empty(n) for _ in range(3))
    scratch = y.new_empty((rows, d))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        y_block, x_block = y[start:stop], x[start:stop]
        beta_block = beta[start:stop]
        torch.div(_dot(x_block, y_block) + eps, _dot(x_block, x_block) + eps, out=beta_block)
        residual = scratch[: stop - start]
        torch.addcmul(y_block, beta_block.unsqueeze(-1), x_block, value=-1, out=residual)
        m[start:stop], v[start:stop] = _block_norms(residual.abs_(), [p_m, p_v])
    return beta, m, v


def _norm_of_abs(abs_r: torch.Tensor, p: float, in_place: bool) -> torch.Tensor:
    """p-norm over the last axis of a block of absolute values; may overwrite it."""
    if p == 1:
        return abs_r.sum(-1)
    if p == math.inf:
        return abs_r.amax(-1)
    if p == 2:
        return _dot(abs_r, abs_r).sqrt_()
    if p == 4:
        squared = abs_r.square_() if in_place else abs_r.square()
        return _dot(squared, squared).sqrt_().sqrt_()
    powered = abs_r.pow_(p) if in_place else abs_r.pow(p)
    return powered.sum(-1).pow_(1.0 / p)


def _block_norms(abs_r: torch.Tensor, orders: list[float]) -> list[torch.Tensor]:
    """Norms of one residual block for each order; orders that need no scratch copy run
    first so the last one can overwrite the block."""
    reads_only = {1.0, 2.0, math.inf}
    schedule = sorted(range(len(orders)), key=lambda k: orders[k] not in reads_only)
    results: list[torch.Tensor | None] = [None] * len(orders)
    for position, k in enumerate(schedule):
        results[k] = _norm_of_abs(abs_r, orders[k], in_place=position == len(schedule) - 1)
    return results  # type: ignore[return-value]


def _chunk_sizes(n_q: int, n_r: int, row_bytes: int, budget: int) -> tuple[int, int]:
    pairs_per_block = max(1, budget // max(1, row_bytes))
    chunk_r = max(1, min(n_r, pairs_per_block))
    chunk_q = max(1, min(n_q, pairs_per_block // chunk_r))
    return chunk_q, chunk_r


def soart3_pairwise(
    Q: Any,
    R: Any,
    p_v: float = 4,
    p_m: float = 1,
    eps: float = 1e-4,
    *,
    component: str = "gamma",
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
) -> Any:
    """SOART3 of every row of `Q` (signal) against every row of `R` (unit).

    Shapes: `Q (Nq, d)`, `R (Nr, d)` → `(Nq, Nr)`; entry `[i, j]` is the `component`
    ("gamma", "yita" or "beta") of `soart3(Q[i], R[j])`. Not symmetric.

    Memory: the `(chunk_q, chunk_r, d)` residual block stays within `max_chunk_bytes`
    (one pair, `d` values, is the smallest block). Under autograd each block is kept for
    the backward pass. Beta comes from a matrix product, so in float32 a pair of identical
    rows scores about 1e-6 rather than exactly 0. NumPy in → NumPy out, torch in → torch out on the same device.
    """
    p_v, p_m, eps = check_order("p_v", p_v), check_order("p_m", p_m), check_eps(eps)
    if component not in COMPONENTS:
        raise SoartLabError(f"component must be one of {', '.join(COMPONENTS)}; got {component!r}.")
    if (
        isinstance(max_chunk_bytes, bool)
        or not isinstance(max_chunk_bytes, int)
        or max_chunk_bytes <= 0
    ):
        raise SoartLabError(f"max_chunk_bytes must be a positive integer; got {max_chunk_bytes!r}.")
    q, r, tensor_out = as_tensor_pair(Q, R, names=("Q", "R"))
    if q.ndim != 2 or r.ndim != 2 or q.shape[1] != r.shape[1]:
        raise SoartLabError(
            f"Q and R must be 2-D with the same number of columns, (Nq, d) and (Nr, d); "
            f"got Q {tuple(q.shape)} and R {tuple(r.shape)}."
        )
    if q.shape[1] == 0:
        raise SoartLabError("Q and R must have at least one column (d >= 1); got d = 0.")

    n_q, n_r, d = q.shape[0], r.shape[0], q.shape[1]
    if n_q == 0 or n_r == 0:
        return to_output(q.new_zeros((n_q, n_r)), tensor_out)
    differentiable = torch.is_grad_enabled() and (q.requires_grad or r.requires_grad)
    chunk_q, chunk_r = _chunk_sizes(n_q, n_r, d * q.element_size(), max_chunk_bytes)
    orders = [] if component == "beta" else [p_m] if component == "yita" else [p_m, p_v]
    scratch = None
    if orders and not differentiable:
        scratch = torch.empty(chunk_q * chunk_r * d, dtype=q.dtype, device=q.device)

    unit_sq = _dot(r, r) + eps  # (Nr,)
    rows = []
    for q_start in range(0, n_q, chunk_q):
        q_block = q[q_start : q_start + chunk_q]  # (cq, d)
        beta_rows = (q_block @ r.T + eps) / unit_sq  # (cq, Nr)
        if not orders:
            rows.append(beta_rows)
            continue
        pieces = []
        for r_start in range(0, n_r, chunk_r):
            r_block = r[r_start : r_start + chunk_r]  # (cr, d)
            beta = beta_rows[:, r_start : r_start + chunk_r, None]  # (cq, cr, 1)
            if scratch is None:
                residual = q_block[:, None, :] - beta * r_block[None, :, :]
                norms = [torch.linalg.vector_norm(residual, ord=p, dim=-1) for p in orders]
            else:
                shape = (q_block.shape[0], r_block.shape[0], d)
                residual = scratch[: math.prod(shape)].view(shape)
                torch.addcmul(q_block[:, None, :], beta, r_block[None], value=-1, out=residual)
                norms = _block_norms(residual.abs_(), orders)
            yita = torch.log1p(norms[0])
            pieces.append(yita if component == "yita" else yita - torch.log1p(norms[1]))
        rows.append(torch.cat(pieces, dim=1))
    return to_output(torch.cat(rows, dim=0), tensor_out)
