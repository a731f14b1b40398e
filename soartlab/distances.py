"""Distances between embeddings, all behind one contract:

- `pairwise(a, b)`: `(N, d), (N, d) → (N,)`, row i of `a` against row i of `b`;
- `matrix(q, r)`: `(Nq, d), (Nr, d) → (Nq, Nr)`, computed in bounded memory;
- `knn(q, r, k)`: `(Nq, d), (Nr, d) → (indices (Nq, k), distances (Nq, k))`, nearest first;
- smaller means closer; NumPy in → NumPy out, torch in → torch out (differentiable).

A new distance is one small class: `name`, `_rows` (and optionally a faster `_matrix`).
A distance is the raw metric: reshaping it for training (a `GammaTransform`, a margin)
belongs to the loss.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import torch

from soartlab.checks import as_tensor_pair, check_eps, check_k, check_order, to_output
from soartlab.errors import SoartLabError
from soartlab.metric import DEFAULT_MAX_CHUNK_BYTES, soart3, soart3_pairwise
from soartlab.search import soart3_knn

# Brute-force kNN scores queries in blocks whose (block, Nr) distance matrix stays within
# this many bytes.
KNN_BLOCK_BYTES = 64 * 2**20


class Distance:
    """Base class: subclasses set `name` and implement `_rows`."""

    name: str = ""
    smaller_is_closer: bool = True
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES

    def params(self) -> dict[str, Any]:
        """Constructor arguments as plain values: `get_distance(d.name, **d.params())`
        rebuilds an equal distance."""
        return {}

    def pairwise(self, a: Any, b: Any) -> Any:
        """`(N, d), (N, d) → (N,)`: distance of row i of `a` to row i of `b`."""
        a_t, b_t, tensor_out = as_tensor_pair(a, b, names=("a", "b"))
        if a_t.ndim != 2 or a_t.shape != b_t.shape:
            raise SoartLabError(
                f"{self.name}: pairwise needs a and b of the same shape (N, d); "
                f"got a {tuple(a_t.shape)} and b {tuple(b_t.shape)}."
            )
        return to_output(self._rows(a_t, b_t), tensor_out)

    def matrix(self, q: Any, r: Any) -> Any:
        """`(Nq, d), (Nr, d) → (Nq, Nr)`: entry `[i, j]` is the distance of `q[i]` to `r[j]`."""
        q_t, r_t, tensor_out = self._query_pair(q, r, "matrix")
        return to_output(self._matrix(q_t, r_t), tensor_out)

    def knn(
        self, q: Any, r: Any, k: int = 1, *, exact: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `k` rows of `r` nearest to each row of `q` (`q[i]` scored against `r[j]`
        as in `matrix`).

        Returns NumPy `(indices (Nq, k) int64, distances (Nq, k))`, nearest first; the
        distances have the dtype of `matrix` (float32 for float32 input). Brute force:
        `matrix` over blocks of queries, so the `(block, Nr)` matrix stays within
        `KNN_BLOCK_BYTES`; it is exact, so `exact` changes nothing here (a subclass with a
        faster approximate search uses it). Equally near rows come in index order.
        """
        q_t, r_t, _ = self._query_pair(q, r, "knn")
        k = check_k(k, r_t.shape[0], "len(r)")
        n_q, n_r = q_t.shape[0], r_t.shape[0]
        block = max(1, KNN_BLOCK_BYTES // (n_r * q_t.element_size()))
        indices = np.empty((n_q, k), dtype=np.int64)
        distances = q_t.new_empty((n_q, k), device="cpu").numpy()
        with torch.no_grad():
            for start in range(0, n_q, block):
                scores = self._matrix(q_t[start : start + block], r_t).cpu().numpy()
                found = _smallest_first(scores, k)
                indices[start : start + len(scores)] = found
                distances[start : start + len(scores)] = np.take_along_axis(scores, found, 1)
        return indices, distances

    def _query_pair(self, q: Any, r: Any, method: str) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """`q (Nq, d)`, `r (Nr, d)` as tensors of one dtype and device, checked."""
        q_t, r_t, tensor_out = as_tensor_pair(q, r, names=("q", "r"))
        if q_t.ndim != 2 or r_t.ndim != 2 or q_t.shape[1] != r_t.shape[1]:
            raise SoartLabError(
                f"{self.name}: {method} needs q (Nq, d) and r (Nr, d) with the same d; "
                f"got q {tuple(q_t.shape)} and r {tuple(r_t.shape)}."
            )
        return q_t, r_t, tensor_out

    def _rows(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distance over the last axis; leading axes broadcast."""
        raise NotImplementedError

    def _matrix(self, q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Generic matrix: `_rows` on broadcast `(cq, 1, d), (1, Nr, d)` blocks."""
        row_bytes = max(1, r.shape[0] * q.shape[1] * q.element_size())
        chunk_q = max(1, self.max_chunk_bytes // row_bytes)
        blocks = [
            self._rows(q[start : start + chunk_q, None, :], r[None, :, :])
            for start in range(0, q.shape[0], chunk_q)
        ]
        return torch.cat(blocks) if blocks else q.new_zeros((0, r.shape[0]))

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        # the name too: the SOART3 components share a class and their parameters
        return (
            type(self) is type(other)
            and self.name == other.name  # type: ignore[attr-defined]
            and self.params() == other.params()  # type: ignore[attr-defined]
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.name, repr(self.params())))


class SOART3Distance(Distance):
    """SOART3 between embeddings: `a` (or `q`) is the signal, `b` (or `r`) the unit.

    component "gamma": raw gamma; "yita": yita; "beta": `|1 − beta|`, so that smaller is
    closer (beta = 1 means the signal is the unit up to no rescaling). A gamma transform
    for training is the loss's (`ContrastiveLoss(distance, margin, transform)`).
    """

    def __init__(
        self,
        p_v: float = 4,
        p_m: float = 1,
        eps: float = 1e-4,
        component: str = "gamma",
        *,
        max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    ) -> None:
        if component not in ("gamma", "yita", "beta"):
            raise SoartLabError(f"component must be gamma, yita or beta; got {component!r}.")
        self.p_v, self.p_m = check_order("p_v", p_v), check_order("p_m", p_m)
        self.eps = check_eps(eps)
        self.component = component
        self.max_chunk_bytes = max_chunk_bytes
        self.name = "soart3" if component == "gamma" else f"soart3_{component}"

    def params(self) -> dict[str, Any]:
        return {"p_v": self.p_v, "p_m": self.p_m, "eps": self.eps}

    def knn(
        self, q: Any, r: Any, k: int = 1, *, exact: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """As `Distance.knn`; for gamma, the two-stage search of `soartlab.search`
        (matrix-product candidates, exact re-ranking; >= 99 % agreement with brute force,
        see BENCHMARKS.md) unless `exact` is set."""
        if self.component != "gamma":
            return super().knn(q, r, k, exact=exact)
        return soart3_knn(q, r, k, exact=exact, p_v=self.p_v, p_m=self.p_m, eps=self.eps)

    def _finish(self, score: torch.Tensor) -> torch.Tensor:
        return (1.0 - score).abs() if self.component == "beta" else score

    def _rows(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        beta, yita, gamma = soart3(a, b, p_v=self.p_v, p_m=self.p_m, eps=self.eps)
        return self._finish({"beta": beta, "yita": yita, "gamma": gamma}[self.component])

    def _matrix(self, q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        score = soart3_pairwise(
            q,
            r,
            p_v=self.p_v,
            p_m=self.p_m,
            eps=self.eps,
            component=self.component,
            max_chunk_bytes=self.max_chunk_bytes,
        )
        return self._finish(score)


class MinkowskiDistance(Distance):
    """`||a − b||_p` (p = inf gives Chebyshev)."""

    name = "minkowski"

    def __init__(self, p: float = 3.0) -> None:
        self.p = check_order("p", p)

    def params(self) -> dict[str, Any]:
        return {"p": self.p}

    def _rows(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # vector_norm's gradient is zero, not NaN, at a == b.
        return torch.linalg.vector_norm(a - b, ord=self.p, dim=-1)

    def _matrix(self, q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        # cdist never holds the (Nq, Nr, d) difference; the exact (non-matmul) mode keeps
        # near-identical pairs accurate.
        return torch.cdist(q, r, p=self.p, compute_mode="donot_use_mm_for_euclid_dist")


class EuclideanDistance(MinkowskiDistance):
    """`||a − b||_2`."""

    name = "euclidean"

    def __init__(self) -> None:
        super().__init__(p=2.0)

    def params(self) -> dict[str, Any]:
        return {}


class ChebyshevDistance(MinkowskiDistance):
    """`max_k |a_k − b_k|`."""

    name = "chebyshev"

    def __init__(self) -> None:
        super().__init__(p=math.inf)

    def params(self) -> dict[str, Any]:
        return {}


class CosineDistance(Distance):
    """`1 − cos(a, b)`, in [0, 2]; a zero vector has cosine 0 with everything (distance 1)."""

    name = "cosine"
    _tiny = 1e-12

    def _unit(self, a: torch.Tensor) -> torch.Tensor:
        return a / torch.linalg.vector_norm(a, dim=-1, keepdim=True).clamp(min=self._tiny)

    def _rows(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (1.0 - torch.linalg.vecdot(self._unit(a), self._unit(b))).clamp(0.0, 2.0)

    def _matrix(self, q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return (1.0 - self._unit(q) @ self._unit(r).T).clamp(0.0, 2.0)


_FACTORIES: dict[str, tuple[type[Distance], dict[str, Any]]] = {
    "soart3": (SOART3Distance, {"component": "gamma"}),
    "soart3_yita": (SOART3Distance, {"component": "yita"}),
    "soart3_beta": (SOART3Distance, {"component": "beta"}),
    "euclidean": (EuclideanDistance, {}),
    "minkowski": (MinkowskiDistance, {}),
    "chebyshev": (ChebyshevDistance, {}),
    "cosine": (CosineDistance, {}),
}
DISTANCE_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def get_distance(name: str, **params: Any) -> Distance:
    """The distance called `name` (one of `DISTANCE_NAMES`), built with `params`."""
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in _FACTORIES:
        raise SoartLabError(
            f"unknown distance {name!r}; valid names are {', '.join(DISTANCE_NAMES)}."
        )
    if key == "soart3" and "transform" in params:
        # Run records written before the transform moved to the loss store
        # "transform": null beside the untransformed distance; that null means no change.
        if params.pop("transform") is not None:
            raise SoartLabError(
                "distance 'soart3' takes no transform: a distance is raw gamma, and the "
                "gamma transform belongs to the loss; pass it as "
                "ContrastiveLoss(distance, margin, transform=GammaTransform(...))."
            )
    cls, fixed = _FACTORIES[key]
    allowed = [
        p.name
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in ("self", "max_chunk_bytes", *fixed)
    ]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        expected = ", ".join(allowed) if allowed else "none"
        raise SoartLabError(
            f"distance {key!r} takes no parameter(s) {', '.join(unknown)}; "
            f"valid parameters: {expected}."
        )
    return cls(**fixed, **params)


def _smallest_first(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices `(n, k)` of the `k` smallest entries per row of `scores (n, m)`,
    in increasing order; among those returned, equal distances keep the lower index first
    (which of several rows tied at the k-th place is returned is not specified)."""
    if k == 1:
        return scores.argmin(axis=1)[:, None]
    top = np.argpartition(scores, k - 1, axis=1)[:, :k]
    # Sort the k by (distance, index): a stable order whatever argpartition returned.
    top.sort(axis=1)
    order = np.argsort(np.take_along_axis(scores, top, 1), axis=1, kind="stable")
    return np.take_along_axis(top, order, 1)
