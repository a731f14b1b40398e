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

With many references (`INDEX_MIN_REFS`) both stages would still visit every reference for
every query, so the search's cost would grow with the square of the data set. There a
cell index comes first (`CellIndex`): the references are grouped into cells of about
`CELL_REFS` by direction (spherical k-means; the residual's size, the first prefilter
score, depends on the angle between query and reference and on nothing else about the
reference), each query is scored against the cells' centres by `|cos|` (a reference and
its negative are equally near: `beta` takes the sign) and the two stages run on the
references of its nearest cells only. How many cells is set once per reference set, on
the references themselves (`CellIndex.tuned`): the fewest that find as near a reference as
the two stages over every reference do, for 95 % of a sample. Where the references are tightly
clustered that is a fixed number of cells, and a query costs about the same whatever the
number of references; where the nearest reference could be anywhere in a large class, it
is a share of the class, and the search saves that share's complement only; where even a
quarter of the cells is not enough, the references are searched without the index. The
index holds no copy of the references and is kept for the next calls.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
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
# The cell index (see the module's docstring): used from this many references, with cells
# of about `CELL_REFS` references, at least `PROBES` of them searched per query, for up to
# `INDEX_CANDIDATES` candidates a score (k <= 16).
INDEX_MIN_REFS = 32_768
CELL_REFS = 256
PROBES = 32
INDEX_CANDIDATES = 256
# How many cells a query probes is set once per reference set: the fewest (from `PROBES`,
# doubling, at most a quarter of the cells) with which a seeded sample of
# `INDEX_CHECK_QUERIES` references finds a reference as near as the nearest other one the
# search over every reference finds, for at least `INDEX_AGREEMENT` of them; references
# for which no count does are searched without the index.
INDEX_CHECK_QUERIES = 128
INDEX_AGREEMENT = 0.95
# Spherical k-means: rounds, and at most this many references per cell to fit the centres.
_KMEANS_ROUNDS = 8
_KMEANS_SAMPLE_PER_CELL = 64
# A cell-index block of queries holds (block, probes, candidates) score buffers of at most
# this many bytes (24 bytes an entry).
_INDEX_BUFFER_BYTES = 32 * 2**20


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
    `soart3_pairwise`, bounded memory). From `INDEX_MIN_REFS` references the two stages
    run on each query's cells of a `CellIndex` only.
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
    index = None
    if n_candidates is not None and n_r >= INDEX_MIN_REFS and n_candidates <= INDEX_CANDIDATES:
        index = cell_index(r, p_v, p_m, eps)
    with torch.no_grad():
        if index is not None:
            step = max(1, _INDEX_BUFFER_BYTES // (24 * index.probes * n_candidates))
            for start in range(0, n_q, step):
                q_block = q_t[start : start + step]
                found, values = index.search(q_block, r_t, n_candidates, k, p_v, p_m)
                indices[start : start + len(found)] = found.numpy()
                gamma[start : start + len(found)] = values.numpy()
            return indices, gamma
        tiles = _tiles(r_t, eps) if n_candidates is not None else []
        for start in range(0, n_q, block):
            q_block = q_t[start : start + block]  # (b, d)
            if n_candidates is None:
                scores = torch.from_numpy(
                    soart3_pairwise(q_block.numpy(), r, p_v=p_v, p_m=p_m, eps=eps)
                )
                values, found = _smallest(scores, k)
            else:
                found, values = _rerank(q_block, r_t, tiles, n_candidates, k, p_v, p_m, eps)
            indices[start : start + block] = found.numpy()
            gamma[start : start + block] = values.numpy()
    return indices, gamma


def _prefilter_terms(r: torch.Tensor, eps: float) -> dict[str, torch.Tensor]:
    """What the prefilter needs of a tile of references `(t, d)`: `R`, `R²`, `R³`
    transposed `(d, t)` for the matrix products, `1 / (x·x + eps)` and `Σx⁴` `(t,)`.
    Computed per tile, so that no copy of all the references is held."""
    r2 = r * r
    return {
        "r_t": r.T.contiguous(),
        "r2_t": r2.T.contiguous(),
        "r3_t": (r2 * r).T.contiguous(),
        "inv_sq": 1.0 / (r2.sum(1) + eps),
        "fourth": (r2 * r2).sum(1),
    }


def _tiles(r: torch.Tensor, eps: float) -> list[tuple[slice, dict[str, torch.Tensor]]]:
    """The references `r (Nr, d)` in tiles of `_TILE_REFS`, each with its
    `_prefilter_terms`, computed once for every query block of a search."""
    return [
        (
            slice(start, min(start + _TILE_REFS, len(r))),
            _prefilter_terms(r[start : start + _TILE_REFS], eps),
        )
        for start in range(0, len(r), _TILE_REFS)
    ]


def _candidates(
    q_block: torch.Tensor,
    tiles: list[tuple[slice, dict[str, torch.Tensor]]],
    n_r: int,
    n_candidates: int,
    eps: float,
) -> torch.Tensor:
    """Candidate references `(b, 2·C)` for a query block `(b, d)` among the `n_r`
    references of `tiles` (`_tiles`): the `C` smallest by each of two cheap scores of the
    residual (`_scores`). A column may appear twice. References are taken in tiles so
    that the dozen elementwise passes run in cache."""
    b = q_block.shape[0]
    query = _query_terms(q_block)
    size = q_block.new_empty((b, n_r))
    shape = q_block.new_empty((b, n_r))
    for tile, terms in tiles:
        _scores(query, terms, eps, size[:, tile], shape[:, tile])
    by_size = torch.topk(size, n_candidates, dim=1, largest=False, sorted=False).indices
    by_shape = torch.topk(shape, n_candidates, dim=1, largest=False, sorted=False).indices
    return torch.cat([by_size, by_shape], dim=1)


def _query_terms(q_block: torch.Tensor) -> dict[str, torch.Tensor]:
    """What `_scores` needs of a query block `(b, d)`, with the expansion's coefficients
    folded into the small query-side factors."""
    q2 = q_block * q_block
    return {
        "q": q_block,
        "sq": q2.sum(1, keepdim=True),
        "fourth": (q2 * q2).sum(1, keepdim=True),
        "minus4": -4 * q_block,
        "q2_times6": 6 * q2,
        "q3_minus4": -4 * q2 * q_block,
    }


def _scores(
    query: dict[str, torch.Tensor],
    terms: dict[str, torch.Tensor],
    eps: float,
    size: torch.Tensor,
    shape: torch.Tensor,
) -> None:
    """The two prefilter scores of a query block against a tile of references (its
    `_prefilter_terms`), written
    into `size` and `shape` `(b, t)`; both from matrix products of the residual
    `r = y − beta·x`:

    - size: `||r||²₂ = y·y − 2·beta·(x·y) + beta²·(x·x) ≈ y·y − beta·(x·y)` (exact for
      eps = 0), less the query's own `y·y`;
    - shape: gamma's own ratio `(1 + ||r||₁) / (1 + ||r||₄)` with `||r||₄⁴` expanded
      exactly as `Σy⁴ − 4β·Σy³x + 6β²·Σy²x² − 4β³·Σyx³ + β⁴·Σx⁴` and `||r||₁` estimated
      as `1.38·||r||₂³ / ||r||₄²` (Hölder's lower bound, scaled to be exact for Gaussian
      residuals).

    The shape score loses precision to cancellation when the residual is much smaller
    than the vectors; there gamma follows the size of the residual, which the first score
    ranks well.
    """
    cross = query["q"] @ terms["r_t"]  # (b, t): x·y
    beta = (cross + eps).mul_(terms["inv_sq"])
    torch.mul(beta, cross, out=size).neg_()
    # Horner in beta: Σy⁴ + β(−4Σy³x + β(6Σy²x² + β(−4Σyx³ + β·Σx⁴))).
    fourth = torch.addmm(beta * terms["fourth"], query["minus4"], terms["r3_t"])
    fourth.mul_(beta).addmm_(query["q2_times6"], terms["r2_t"]).mul_(beta)
    fourth.addmm_(query["q3_minus4"], terms["r_t"]).mul_(beta).add_(query["fourth"])
    l4_sq = fourth.clamp_(min=1e-30).sqrt_()  # ||r||₄²
    l2_sq = (size + query["sq"]).clamp_(min=0)
    l1_plus1 = l2_sq.sqrt().mul_(l2_sq).div_(l4_sq).mul_(1.38).add_(1)
    torch.div(l1_plus1, l4_sq.sqrt_().add_(1), out=shape)


def _rerank(
    q_block: torch.Tensor,
    r: torch.Tensor,
    tiles: list[tuple[slice, dict[str, torch.Tensor]]],
    n_candidates: int,
    k: int,
    p_v: float,
    p_m: float,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidates for one query block `(b, d)`, ranked by exact gamma.
    Returns `(indices (b, k), gamma (b, k))`."""
    candidate = _candidates(q_block, tiles, len(r), n_candidates, eps)
    return _exact_rank(q_block, r, candidate, k, p_v, p_m, eps)


def _exact_rank(
    q_block: torch.Tensor,
    r: torch.Tensor,
    candidate: torch.Tensor,
    k: int,
    p_v: float,
    p_m: float,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The `k` of each query's candidate references `(b, w)` (indices into `r`, repeats
    allowed) nearest by exact gamma: `(indices (b, k), gamma (b, k))`."""
    candidate, _ = torch.sort(candidate, dim=1)
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


@dataclass(frozen=True)
class CellIndex:
    """References grouped into cells by direction, for the search from `INDEX_MIN_REFS`
    references on (see the module's docstring). Holds no copy of the references.

    `centres (C, d)`: each cell's mean direction, unit length; `order (Nr,)`: the
    references' positions sorted by cell, so that cell `c` is `order[bounds[c]:bounds[c+1]]`;
    `probes`: the cells searched per query, as many as the references need (`tuned`).
    """

    centres: torch.Tensor
    order: torch.Tensor
    bounds: np.ndarray
    probes: int
    eps: float

    @classmethod
    def build(cls, r: torch.Tensor, eps: float, seed: int = 0) -> CellIndex:
        """Spherical k-means of the references' directions into `ceil(Nr / CELL_REFS)`
        cells, fitted on a seeded sample (`_KMEANS_SAMPLE_PER_CELL` a cell), then every
        reference assigned to its cell; cells left empty are dropped."""
        n_r = len(r)
        n_cells = max(1, -(-n_r // CELL_REFS))
        directions = r / r.norm(dim=1, keepdim=True).clamp_(min=1e-30)
        generator = torch.Generator().manual_seed(seed)
        n_sample = min(n_r, n_cells * _KMEANS_SAMPLE_PER_CELL)
        sample = directions[torch.randperm(n_r, generator=generator)[:n_sample]]
        centres = sample[:n_cells].clone()
        for _ in range(_KMEANS_ROUNDS):
            cell, sign = _nearest_centre(sample, centres)
            # a row pointing away from its centre counts with its sign turned
            sums = torch.zeros_like(centres).index_add_(0, cell, sample * sign[:, None])
            counts = torch.bincount(cell, minlength=n_cells)
            empty = counts == 0
            if empty.any():  # re-seed an empty cell from a random sample row
                pick = torch.randint(n_sample, (int(empty.sum()),), generator=generator)
                sums[empty] = sample[pick]
            centres = sums / sums.norm(dim=1, keepdim=True).clamp_(min=1e-30)
        del sample
        cell, _ = _nearest_centre(directions, centres)
        del directions
        counts = torch.bincount(cell, minlength=n_cells)
        kept = counts > 0
        renumber = torch.cumsum(kept, 0) - 1
        order = torch.argsort(renumber[cell], stable=True)
        bounds = np.concatenate([[0], np.cumsum(counts[kept].numpy())])
        return cls(centres[kept], order, bounds, PROBES, eps)

    def tuned(self, r: torch.Tensor, p_v: float, p_m: float) -> CellIndex | None:
        """This index with as few probes (from `PROBES`, doubling) as find, for at least
        `INDEX_AGREEMENT` of a seeded sample of `INDEX_CHECK_QUERIES` references, a
        reference as near as the nearest other one the search without the index finds;
        None when even a quarter of the cells do not (references without structure:
        they are searched without the index). Decided on the references alone, so that
        every lot scored against them is scored alike."""
        n_r, n_cells = len(r), len(self.centres)
        generator = torch.Generator().manual_seed(1)
        rows = torch.randperm(n_r, generator=generator)[:INDEX_CHECK_QUERIES]
        sample = r[rows]
        n_candidates = max(DEFAULT_CANDIDATES, 2 * CANDIDATES_PER_NEIGHBOUR)
        without, without_gamma = _rerank(
            sample, r, _tiles(r, self.eps), n_candidates, 2, p_v, p_m, self.eps
        )
        nearest_other = _other_than(rows.numpy(), without.numpy(), without_gamma.numpy())
        probes = min(PROBES, n_cells)
        while probes <= max(1, n_cells // 4):
            index = replace(self, probes=probes)
            found, gamma = index.search(sample, r, n_candidates, 2, p_v, p_m)
            got = _other_than(rows.numpy(), found.numpy(), gamma.numpy())
            if np.mean(got <= nearest_other + 1e-6) >= INDEX_AGREEMENT:
                return index
            probes *= 2
        return None

    def search(
        self,
        q_block: torch.Tensor,
        r: torch.Tensor,
        n_candidates: int,
        k: int,
        p_v: float,
        p_m: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The `k` references of `r` (the references the index was built on) nearest to
        each query of `q_block (b, d)` among its `probes` cells: `(indices (b, k) into
        `r`, gamma (b, k))`.

        Cell by cell, the queries that probe it are scored against its references and
        keep their `n_candidates` best by each prefilter score; each query then keeps the
        `n_candidates` best of those over its cells, and the two stages end as without an
        index: exact gamma of the (at most 2·n_candidates) candidates."""
        b = len(q_block)
        n_cells = len(self.centres)
        probes = min(self.probes, n_cells)
        cosine = (q_block @ self.centres.T).abs_()
        probed = torch.topk(cosine, probes, dim=1).indices  # (b, probes)
        # the queries probing each cell, found by sorting the (query, probe) pairs by cell
        flat = probed.reshape(-1)
        by_cell = torch.argsort(flat, stable=True)
        starts = np.searchsorted(flat[by_cell].numpy(), np.arange(n_cells + 1))
        query_of, slot_of = by_cell // probes, by_cell % probes
        buffer = (b, probes, n_candidates)
        size_best = q_block.new_full(buffer, torch.inf)
        shape_best = q_block.new_full(buffer, torch.inf)
        size_at = torch.zeros(buffer, dtype=torch.int64)
        shape_at = torch.zeros(buffer, dtype=torch.int64)
        for c in np.flatnonzero(np.diff(starts)):
            pairs = slice(int(starts[c]), int(starts[c + 1]))
            queries, slots = query_of[pairs], slot_of[pairs]
            members = self.order[int(self.bounds[c]) : int(self.bounds[c + 1])]
            size = q_block.new_empty((len(queries), len(members)))
            shape = torch.empty_like(size)
            terms = _prefilter_terms(r[members], self.eps)
            _scores(_query_terms(q_block[queries]), terms, self.eps, size, shape)
            keep = min(n_candidates, len(members))
            for best, at, score in ((size_best, size_at, size), (shape_best, shape_at, shape)):
                values, found = torch.topk(score, keep, dim=1, largest=False, sorted=False)
                best[queries, slots, :keep] = values
                at[queries, slots, :keep] = members[found]
        candidate = []
        for best, at in ((size_best, size_at), (shape_best, shape_at)):
            pick = torch.topk(best.view(b, -1), n_candidates, dim=1, largest=False).indices
            candidate.append(at.view(b, -1).gather(1, pick))
        return _exact_rank(q_block, r, torch.cat(candidate, dim=1), k, p_v, p_m, self.eps)


def _other_than(rows: np.ndarray, idx: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """Of each row's two nearest `(n, 2)`, the gamma of the nearest that is not the row
    itself `(n,)`."""
    return np.where(idx[:, 0] == rows, gamma[:, 1], gamma[:, 0])


def _nearest_centre(
    directions: torch.Tensor, centres: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's centre by largest `|cos|` `(N,)`, and the sign of that cosine `(N,)`,
    in blocks of rows."""
    block = max(1, (32 * 2**20) // (4 * max(1, len(centres))))
    cells, signs = [], []
    for start in range(0, len(directions), block):
        cosine = directions[start : start + block] @ centres.T
        cell = cosine.abs().argmax(1)
        cells.append(cell)
        signs.append(torch.sign(cosine.gather(1, cell[:, None])[:, 0]))
    return torch.cat(cells), torch.cat(signs)


# Indexes of recent reference sets (small: centres and an order each), by a hash of the
# references' bytes and the distance's parameters; None for references searched without.
_INDEX_CACHE: OrderedDict[str, CellIndex | None] = OrderedDict()
_INDEX_CACHE_SIZE = 8
_INDEX_LOCK = threading.Lock()


def cell_index(r: np.ndarray, p_v: float, p_m: float, eps: float) -> CellIndex | None:
    """The tuned `CellIndex` of the references `r`, or None when they are to be searched
    without one; kept for the next calls with the same references (the chunks of a lot,
    its good and defective references, a page scoring again)."""
    key = hashlib.blake2b(memoryview(np.ascontiguousarray(r)).cast("B"), digest_size=16)
    key.update(repr((r.shape, r.dtype.str, p_v, p_m, eps)).encode())
    digest = key.hexdigest()
    with _INDEX_LOCK:
        if digest in _INDEX_CACHE:
            _INDEX_CACHE.move_to_end(digest)
            return _INDEX_CACHE[digest]
    r_t = torch.from_numpy(r)
    with torch.no_grad():
        index = CellIndex.build(r_t, eps).tuned(r_t, p_v, p_m)
    with _INDEX_LOCK:
        _INDEX_CACHE[digest] = index
        while len(_INDEX_CACHE) > _INDEX_CACHE_SIZE:
            _INDEX_CACHE.popitem(last=False)
    return index
