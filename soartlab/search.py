"""Nearest neighbours under the SOART3 gamma distance, in two stages.

Scoring every query against every reference with SOART3 costs one elementwise pass over a
`(Nq, Nr, d)` residual, which no matrix product can do: the L1 norm has no algebraic
shortcut. The two-stage search avoids most of it:

1. candidates: two cheap scores of the very residual SOART3 measures, `y − beta·x`, for
   every pair, both from matrix products (`Q @ R.T` and three more with the squares and
   cubes): its L2 size, and gamma's own ratio with `||r||₄` expanded exactly and `||r||₁`
   estimated from `||r||₂` and `||r||₄`; the `candidates` smallest by each are kept;
2. re-ranking: exact SOART3 gamma of each query against its (at most 2·candidates)
   candidates only, row-wise, and the `k` smallest are returned.

A reference outside the candidates can still be the true nearest one (gamma measures how
spread out the residual is, not only its size), so the result agrees with the exhaustive
search on most queries, not by construction on all. `BENCHMARKS.md` gives the measured
agreement on embeddings of the demo set; `exact=True` scores every pair instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from soartlab.checks import check_eps, check_k, check_order
from soartlab.errors import SoartLabError
from soartlab.metric import soart3, soart3_pairwise

# Candidates kept per query by each prefilter score. With 32 the true SOART3 nearest
# neighbour was among the candidates for >= 99.7 % of queries on embeddings of the demo set,
# clustered synthetic data and plain Gaussian vectors (BENCHMARKS.md, bench/bench_knn.py),
# at a re-ranking cost of at most 64 row-wise SOART3 scores per query.
DEFAULT_CANDIDATES = 32
# For k > 1 the prefilter keeps at least this many per score and neighbour asked for: on
# clustered data (20,000 references) 32 per score found 96 % of the true 5 nearest, 64
# found 99.5 %.
CANDIDATES_PER_NEIGHBOUR = 16
# Queries handled together; bounds the (block, Nr) prefilter matrix and the
# (block · candidates, d) re-ranking gather.
_QUERY_BLOCK_BYTES = 64 * 2**20
# At most this many queries a block, and references a tile, in the prefilter: a
# (block, tile) float32 matrix of 512 KiB, so that its elementwise passes stay in cache.
_MAX_QUERY_BLOCK = 128
_TILE_REFS = 1024


def _as_matrix(name: str, a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise SoartLabError(f"{name} must be numeric; got an array of dtype {a.dtype}.")
    if a.ndim != 2:
        raise SoartLabError(f"{name} must be 2-D (N, d); got shape {a.shape}.")
    dtype = np.float32 if a.dtype.kind == "f" and a.dtype.itemsize <= 4 else np.float64
    return np.ascontiguousarray(a, dtype=dtype)


def _smallest(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`(values, indices)` of the `k` smallest entries per row, in increasing order."""
    return torch.topk(scores, k, dim=1, largest=False, sorted=True)


def soart3_knn(
    Q: Any,
    R: Any,
    k: int = 1,
    *,
    candidates: int | None = DEFAULT_CANDIDATES,
    exact: bool = False,
    p_v: float = 4,
    p_m: float = 1,
    eps: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray]:
    """The `k` references nearest to each query under SOART3 gamma (smaller is closer).

    `Q (Nq, d)` are the signals, `R (Nr, d)` the units, as in `soart3_pairwise(Q, R)`.
    Returns `(indices (Nq, k) int64, gamma (Nq, k))`, nearest first; gamma is float32 for
    float32 input, float64 otherwise, and is the exact SOART3 gamma of each pair returned.

    `candidates`: references kept per query by each of the two prefilter scores before
    exact re-ranking (at least `CANDIDATES_PER_NEIGHBOUR · k`). `exact=True`,
    `candidates=None` or a count `>= Nr` score every pair instead (chunked
    `soart3_pairwise`, bounded memory).
    """
    q, r = _as_matrix("Q", Q), _as_matrix("R", R)
    if q.shape[1] != r.shape[1]:
        raise SoartLabError(
            f"Q and R must have the same number of columns; got Q {q.shape} and R {r.shape}."
        )
    if q.shape[1] == 0:
        raise SoartLabError("Q and R must have at least one column (d >= 1); got d = 0.")
    if len(r) == 0:
        raise SoartLabError("R holds no reference rows; nearest neighbours need at least one.")
    k = check_k(k, len(r))
    if candidates is not None and (
        isinstance(candidates, bool)
        or not isinstance(candidates, int | np.integer)
        or candidates < 1
    ):
        raise SoartLabError(f"candidates must be a positive integer or None; got {candidates!r}.")
    p_v, p_m, eps = check_order("p_v", p_v), check_order("p_m", p_m), check_eps(eps)
    if q.dtype != r.dtype:
        q, r = q.astype(np.float64), r.astype(np.float64)

    n_q, n_r = len(q), len(r)
    indices = np.empty((n_q, k), dtype=np.int64)
    gamma = np.empty((n_q, k), dtype=q.dtype)
    if n_q == 0:
        return indices, gamma
    row_bytes = n_r * q.itemsize * 3  # a block's two score rows and a gamma row
    block = max(1, min(n_q, _MAX_QUERY_BLOCK, _QUERY_BLOCK_BYTES // row_bytes))
    n_candidates = None
    if not exact and candidates is not None:
        n_candidates = max(int(candidates), CANDIDATES_PER_NEIGHBOUR * k)
    if n_candidates is not None and n_candidates >= n_r:
        n_candidates = None

    q_t, r_t = torch.from_numpy(q), torch.from_numpy(r)
    with torch.no_grad():
        terms = _prefilter_terms(r_t, eps) if n_candidates is not None else {}
        for start in range(0, n_q, block):
            q_block = q_t[start : start + block]  # (b, d)
            if n_candidates is None:
                scores = torch.from_numpy(
                    soart3_pairwise(q_block.numpy(), r, p_v=p_v, p_m=p_m, eps=eps)
                )
                values, found = _smallest(scores, k)
            else:
                found, values = _rerank(q_block, r_t, terms, n_candidates, k, p_v, p_m, eps)
            indices[start : start + block] = found.numpy()
            gamma[start : start + block] = values.numpy()
    return indices, gamma


def _prefilter_terms(r: torch.Tensor, eps: float) -> dict[str, torch.Tensor]:
    """What the prefilter needs of the references, computed once: `R`, `R²`, `R³`
    transposed `(d, Nr)` for the matrix products, `1 / (x·x + eps)` and `Σx⁴` `(Nr,)`."""
    r2 = r * r
    return {
        "r_t": r.T.contiguous(),
        "r2_t": r2.T.contiguous(),
        "r3_t": (r2 * r).T.contiguous(),
        "inv_sq": 1.0 / (r2.sum(1) + eps),
        "fourth": (r2 * r2).sum(1),
    }


def _candidates(
    q_block: torch.Tensor, terms: dict[str, torch.Tensor], n_candidates: int, eps: float
) -> torch.Tensor:
    """Candidate references `(b, 2·C)` for a query block `(b, d)`: the `C` smallest by
    each of two cheap scores of the residual `r = y − beta·x`, both from matrix products.

    - size: `||r||²₂ = y·y − 2·beta·(x·y) + beta²·(x·x) ≈ y·y − beta·(x·y)` (exact for
      eps = 0);
    - shape: gamma's own ratio `(1 + ||r||₁) / (1 + ||r||₄)` with `||r||₄⁴` expanded
      exactly as `Σy⁴ − 4β·Σy³x + 6β²·Σy²x² − 4β³·Σyx³ + β⁴·Σx⁴` and `||r||₁` estimated
      as `1.38·||r||₂³ / ||r||₄²` (Hölder's lower bound, scaled to be exact for Gaussian
      residuals).

    The shape score loses precision to cancellation when the residual is much smaller
    than the vectors; there gamma follows the size of the residual, which the first score
    ranks well. A column may appear twice. References are taken in tiles so that the
    dozen elementwise passes run in cache.
    """
    b = q_block.shape[0]
    n_r = terms["r_t"].shape[1]
    q2 = q_block * q_block
    q_sq = q2.sum(1, keepdim=True)
    q_fourth = (q2 * q2).sum(1, keepdim=True)
    # Coefficients of the expansion folded into the small query-side factors.
    q_minus4 = -4 * q_block
    q2_times6 = 6 * q2
    q3_minus4 = -4 * q2 * q_block
    size = q_block.new_empty((b, n_r))
    shape = q_block.new_empty((b, n_r))
    for start in range(0, n_r, _TILE_REFS):
        tile = slice(start, start + _TILE_REFS)
        cross = q_block @ terms["r_t"][:, tile]  # (b, t): x·y
        beta = (cross + eps).mul_(terms["inv_sq"][tile])
        size_tile = torch.mul(beta, cross, out=size[:, tile]).neg_()
        # Horner in beta: Σy⁴ + β(−4Σy³x + β(6Σy²x² + β(−4Σyx³ + β·Σx⁴))).
        fourth = torch.addmm(beta * terms["fourth"][tile], q_minus4, terms["r3_t"][:, tile])
        fourth.mul_(beta).addmm_(q2_times6, terms["r2_t"][:, tile]).mul_(beta)
        fourth.addmm_(q3_minus4, terms["r_t"][:, tile]).mul_(beta).add_(q_fourth)
        l4_sq = fourth.clamp_(min=1e-30).sqrt_()  # ||r||₄²
        l2_sq = (size_tile + q_sq).clamp_(min=0)
        l1_plus1 = l2_sq.sqrt().mul_(l2_sq).div_(l4_sq).mul_(1.38).add_(1)
        torch.div(l1_plus1, l4_sq.sqrt_().add_(1), out=shape[:, tile])
    by_size = torch.topk(size, n_candidates, dim=1, largest=False, sorted=False).indices
    by_shape = torch.topk(shape, n_candidates, dim=1, largest=False, sorted=False).indices
    return torch.cat([by_size, by_shape], dim=1)


def _rerank(
    q_block: torch.Tensor,
    r: torch.Tensor,
    terms: dict[str, torch.Tensor],
    n_candidates: int,
    k: int,
    p_v: float,
    p_m: float,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidates for one query block `(b, d)`, ranked by exact gamma.
    Returns `(indices (b, k), gamma (b, k))`."""
    candidate, _ = torch.sort(_candidates(q_block, terms, n_candidates, eps), dim=1)
    b, d = q_block.shape
    width = candidate.shape[1]
    signals = q_block[:, None, :].expand(b, width, d).reshape(-1, d)
    units = r[candidate.reshape(-1)]
    _, _, exact_gamma = soart3(signals.numpy(), units.numpy(), p_v=p_v, p_m=p_m, eps=eps)
    exact_gamma = torch.from_numpy(exact_gamma).view(b, width)
    # A reference found by both scores is kept once.
    repeated = torch.zeros_like(candidate, dtype=torch.bool)
    repeated[:, 1:] = candidate[:, 1:] == candidate[:, :-1]
    exact_gamma[repeated] = torch.inf
    values, order = _smallest(exact_gamma, k)
    return candidate.gather(1, order), values
