"""Why a part was judged as it was: its nearest good and nearest defective reference
parts with their distances, and, for images, where it differs from the nearest good one.

A run's references are the embeddings (N_ref, e) of its training rows, in the order of
the rows (`reference_rows`); the run folder keeps no pixels. Distances and classes of
the nearest references need only the run. The reference images and the heatmaps need
the reference parts' pixels: they are shown when the data the run was trained on is
loaded (`reference_samples` checks its fingerprint), and not otherwise.

Two heatmaps per part:

- ``residual``: the SOART3 residual ``y − beta·x`` of the part ``y`` (signal) against
  its closest good reference in pixels ``x`` (unit): the good reference with the
  smallest SOART3 ``yita`` = log(1 + ||y − beta·x||_1), the good part that explains this
  one best up to a brightness factor. Raw pixels (the values as loaded, before the
  model's normalisation: the proportional model of the RT method holds there, a brighter
  part is ``beta > 1``; normalised pixels are shifted by the mean). The nearest good
  reference in the embedding can be a good part in another position (the network is
  trained to ignore that), whose pixel residual would show the shift, not the defect.
- ``gradient``: ``|∂ d / ∂ y|``, the input-gradient of the run's distance (SOART3 gamma
  for a SOART3 run) between the part's embedding and its nearest good reference's
  embedding, per raw pixel: where the network's decision is sensitive.

Both are drawn on scales fixed from the training parts (`heatmap_scale`): a percentile
over good training parts against their own nearest other good reference (found the
same way), never per image, so a good part stays pale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from soartlab.distances import Distance, SOART3Distance
from soartlab.metric import soart3
from soartlab.prepare import dataset_fingerprint
from soartlab.record import RunRecord

NO_REFERENCE = -1  # a reference index where no reference of that kind was found
SCALE_PERCENTILE = 99.0
SCALE_MAX_PARTS = 256  # good training parts the scale is taken over (a seeded sample)
RESIDUAL_EPS = 1e-4  # the seed's eps in beta = (x·y + eps) / (x·x + eps)


def reference_rows(record: RunRecord) -> np.ndarray | None:
    """Rows (N_ref,) of the run's data behind its references, in reference order: the
    training rows, i.e. every row the record does not list as held out (training embeds
    ``x_train``, the sorted training rows). None for a record without a ``data`` block."""
    info = record.data
    if info is None:
        return None
    training = np.ones(info.n_samples, dtype=bool)
    training[np.asarray(info.test_indices, dtype=np.int64)] = False
    return np.flatnonzero(training)


def reference_samples(record: RunRecord, dataset) -> np.ndarray | None:
    """The raw reference parts (N_ref, d) float32 taken from ``dataset`` when it is the
    data the run was trained on (same rows and fingerprint), else None."""
    from soartlab.data import to_arrays

    rows = reference_rows(record)
    if rows is None or dataset is None or len(dataset) != record.data.n_samples:
        return None
    if dataset_fingerprint(dataset) != record.data.fingerprint:
        return None
    X, _ = to_arrays(dataset)
    return np.ascontiguousarray(X[rows])


@dataclass(frozen=True)
class NearestReferences:
    """For each of N parts: the nearest good reference and the nearest defective one
    (reference indices, `NO_REFERENCE` when there is none or the part is not finite),
    their distances (NaN then) and the defective one's class id."""

    good: np.ndarray  # (N,) int64
    good_distance: np.ndarray  # (N,) float64
    defect: np.ndarray  # (N,) int64
    defect_distance: np.ndarray  # (N,) float64
    defect_class: np.ndarray  # (N,) int64, NO_REFERENCE when none


def _nearest_among(query, ref_emb, members, distance):
    n = len(query)
    index = np.full(n, NO_REFERENCE, dtype=np.int64)
    dist = np.full(n, np.nan)
    finite = np.isfinite(query).all(axis=1)
    if len(members) and finite.any():
        with np.errstate(over="ignore", invalid="ignore"):
            found, d = distance.knn(query[finite], ref_emb[members], 1)
        index[finite], dist[finite] = members[found[:, 0]], d[:, 0]
        lost = ~np.isfinite(dist)
        index[lost], dist[lost] = NO_REFERENCE, np.nan
    return index, dist


def nearest_references(
    query_emb: np.ndarray,
    ref_emb: np.ndarray,
    ref_labels: np.ndarray,
    good_index: int,
    distance: Distance,
) -> NearestReferences:
    """Nearest good and nearest defective reference of each query embedding (Nq, e)
    among ``ref_emb`` (N_ref, e) with classes ``ref_labels`` (N_ref,), under ``distance``
    (query the signal, reference the unit, as in `Distance.knn`)."""
    query_emb = np.asarray(query_emb, dtype=np.float32)
    ref_labels = np.asarray(ref_labels, dtype=np.int64)
    good_members = np.flatnonzero(ref_labels == good_index)
    defect_members = np.flatnonzero(ref_labels != good_index)
    good, good_d = _nearest_among(query_emb, ref_emb, good_members, distance)
    defect, defect_d = _nearest_among(query_emb, ref_emb, defect_members, distance)
    defect_class = np.where(defect >= 0, ref_labels[np.maximum(defect, 0)], NO_REFERENCE)
    return NearestReferences(good, good_d, defect, defect_d, defect_class)


def residual_map(parts: np.ndarray, units: np.ndarray, eps: float = RESIDUAL_EPS) -> np.ndarray:
    """SOART3 residual ``y − beta·x`` (N, d) float64 of each part ``y`` (N, d) against its
    unit ``x`` (N, d), with beta as `metric.soart3` computes it."""
    y = np.asarray(parts, dtype=np.float64)
    x = np.asarray(units, dtype=np.float64)
    beta, _, _ = soart3(y, x, eps=eps)
    return y - np.asarray(beta)[:, None] * x


def distance_gradient(
    model: torch.nn.Module, distance: Distance, parts: np.ndarray, unit_emb: np.ndarray
) -> np.ndarray:
    """``|∂ distance(f(y), u) / ∂ y|`` (N, d) float32: how strongly each raw input value
    of part ``y`` (N, d) moves the distance between its embedding ``f(y)`` and the
    reference embedding ``u`` (N, e) (the part the signal, the reference the unit)."""
    net = model.module if hasattr(model, "module") else model
    was_training = net.training
    net.eval()
    try:
        y = torch.tensor(np.asarray(parts, dtype=np.float32), requires_grad=True)
        unit = torch.tensor(np.asarray(unit_emb, dtype=np.float32))
        with torch.enable_grad():
            d = distance.pairwise(net.get_embedding(y), unit)
            (gradient,) = torch.autograd.grad(d.sum(), y)
    finally:
        net.train(was_training)
    return gradient.abs().numpy()


def closest_good_in_pixels(
    parts: np.ndarray, good_x: np.ndarray, *, exclude: np.ndarray | None = None
) -> np.ndarray:
    """Index (N,) into ``good_x`` (G, d) of each part's (N, d) closest good reference in
    raw pixels: the smallest SOART3 yita (the residual's L1 size after the best scaling).
    ``exclude`` (N,): a row of ``good_x`` each part may not take (itself), or -1."""
    units = SOART3Distance(eps=RESIDUAL_EPS, component="yita")
    k = 1 if exclude is None else 2
    found, _ = units.knn(np.asarray(parts, np.float32), np.asarray(good_x, np.float32), k)
    if exclude is None:
        return found[:, 0]
    return np.where(found[:, 0] == exclude, found[:, 1], found[:, 0])


@dataclass(frozen=True)
class HeatmapScale:
    """Full colour of each heatmap: ``residual`` for ``|y − beta·x|``, ``gradient`` for
    ``|∂d/∂y|``; the ``percentile`` of those values over ``n_parts`` good training parts,
    each against its closest other good reference (as `explain_parts` finds it)."""

    residual: float
    gradient: float
    percentile: float
    n_parts: int

    def to_dict(self) -> dict:
        return {
            "residual": self.residual,
            "gradient": self.gradient,
            "percentile": self.percentile,
            "n_parts": self.n_parts,
        }


def heatmap_scale(
    model: torch.nn.Module,
    distance: Distance,
    ref_x: np.ndarray,
    ref_emb: np.ndarray,
    ref_labels: np.ndarray,
    good_index: int,
    *,
    percentile: float = SCALE_PERCENTILE,
    max_parts: int = SCALE_MAX_PARTS,
    seed: int = 0,
) -> HeatmapScale:
    """The colour scales of the heatmaps: what a good part's heatmaps look like. Taken
    over the good references (at most ``max_parts``, a seeded sample), each against its
    closest *other* good reference in pixels (residual) and its nearest other good
    reference in the embedding (gradient). ``ref_x`` (N_ref, d) raw, ``ref_emb``
    (N_ref, e), ``ref_labels`` (N_ref,). `ValueError` with fewer than 2 good references."""
    good = np.flatnonzero(np.asarray(ref_labels) == good_index)
    if len(good) < 2:
        raise ValueError(f"A heatmap scale needs 2 good references or more; got {len(good)}.")
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(good, size=min(max_parts, len(good)), replace=False))
    own = np.searchsorted(good, sample)
    pixel_units = good[closest_good_in_pixels(ref_x[sample], ref_x[good], exclude=own)]
    found, _ = distance.knn(ref_emb[sample], ref_emb[good], 2)
    embedding_units = good[np.where(found[:, 0] == own, found[:, 1], found[:, 0])]
    residual = np.abs(residual_map(ref_x[sample], ref_x[pixel_units]))
    gradient = distance_gradient(model, distance, ref_x[sample], ref_emb[embedding_units])
    tiny = np.finfo(np.float32).tiny
    return HeatmapScale(
        residual=max(float(np.percentile(residual, percentile)), tiny),
        gradient=max(float(np.percentile(gradient, percentile)), tiny),
        percentile=percentile,
        n_parts=len(sample),
    )


@dataclass(frozen=True)
class Explanation:
    """Why N parts were judged as they were: ``nearest`` references in the embedding;
    with the reference pixels, ``unit`` (N,) the closest good reference in pixels (the
    residual's ``x``; `NO_REFERENCE` when none), ``residual`` and ``gradient`` (N, d)
    (NaN rows for a part without a heatmap). Without the pixels the last three are None."""

    nearest: NearestReferences
    unit: np.ndarray | None
    residual: np.ndarray | None
    gradient: np.ndarray | None

    @property
    def has_heatmap(self) -> np.ndarray:
        """(N,) bool: the part has heatmaps."""
        if self.residual is None:
            return np.zeros(len(self.nearest.good), dtype=bool)
        return np.isfinite(self.residual).all(axis=1) & np.isfinite(self.gradient).all(axis=1)


def explain_parts(
    model: torch.nn.Module,
    distance: Distance,
    references: tuple[np.ndarray, np.ndarray],
    good_index: int,
    parts: np.ndarray,
    part_emb: np.ndarray,
    ref_x: np.ndarray | None = None,
) -> Explanation:
    """Nearest references of ``parts`` (N, d) raw with embeddings ``part_emb`` (N, e)
    among ``references`` = (embeddings (N_ref, e), labels (N_ref,)), and with the
    reference pixels ``ref_x`` (N_ref, d) the two heatmaps (see the module docstring).
    A part whose input or embedding is not finite gets no nearest reference and no heatmap."""
    ref_emb, ref_labels = references
    parts = np.asarray(parts, dtype=np.float32)
    finite = np.isfinite(parts).all(axis=1)
    part_emb = np.where(finite[:, None], part_emb, np.nan)
    nearest = nearest_references(part_emb, ref_emb, ref_labels, good_index, distance)
    if ref_x is None:
        return Explanation(nearest, None, None, None)
    unit = np.full(len(parts), NO_REFERENCE, dtype=np.int64)
    residual = np.full(parts.shape, np.nan)
    gradient = np.full(parts.shape, np.nan, dtype=np.float32)
    good = np.flatnonzero(np.asarray(ref_labels) == good_index)
    ok = np.flatnonzero(finite & (nearest.good >= 0))
    if len(ok) and len(good):
        with np.errstate(over="ignore", invalid="ignore"):
            unit[ok] = good[closest_good_in_pixels(parts[ok], ref_x[good])]
            residual[ok] = residual_map(parts[ok], ref_x[unit[ok]])
            gradient[ok] = distance_gradient(model, distance, parts[ok], ref_emb[nearest.good[ok]])
    return Explanation(nearest, unit, residual, gradient)
