"""Evaluation: embeddings, nearest-neighbour / prototype classification under any
registered distance, inspection metrics, PCA and pair-distance samples for histograms."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from soartlab.data import sample_pairs
from soartlab.distances import Distance
from soartlab.errors import SoartLabError

EMBED_BATCH_BYTES = 16 * 2**20  # a batch's input
EMBED_ACTIVATION_BYTES = 128 * 2**20  # a batch's input times the network's activation_ratio


@torch.no_grad()
def embed(
    model: torch.nn.Module, X: np.ndarray, batch_size: int = 1024, device: str = "cpu"
) -> np.ndarray:
    """Embeddings of `X` (N, d) float32 → (N, e) float32, computed in batches (of fewer
    rows when they are wide: a batch's input holds at most `EMBED_BATCH_BYTES` of float32,
    and times the network's `activation_ratio` when it has one (the cnn's full-resolution
    feature maps) at most `EMBED_ACTIVATION_BYTES`). `X` may be rows read on demand (`soartlab.rows`),
    read a batch at a time."""
    net = model.module if hasattr(model, "module") else model
    if len(X):
        width = int(np.prod(X.shape[1:]))
        ratio = max(1, int(getattr(getattr(net, "embedding_net", None), "activation_ratio", 1)))
        row = 4 * max(width, 1)
        batch_size = max(
            1,
            min(batch_size, EMBED_BATCH_BYTES // row, EMBED_ACTIVATION_BYTES // (row * ratio)),
        )
    get_embedding = net.get_embedding
    was_training = net.training
    net.eval()
    out = []
    for start in range(0, len(X), batch_size):
        # a copy: the rows may be a read-only view of an Arrow table
        batch = torch.tensor(X[start : start + batch_size], dtype=torch.float32)
        out.append(get_embedding(batch.to(device)).float().cpu().numpy())
    net.train(was_training)
    if not out:
        dim = net.embedding_net.final.out_features if hasattr(net, "embedding_net") else 0
        return np.zeros((0, dim), dtype=np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)


def prototypes(emb: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Class means (n_classes, e); a class without samples gets NaN (never nearest)."""
    protos = np.full((n_classes, emb.shape[1]), np.nan, dtype=np.float32)
    for c in range(n_classes):
        members = emb[labels == c]
        if len(members):
            protos[c] = members.mean(axis=0)
    return protos


def classify(
    ref_emb: np.ndarray,
    ref_labels: np.ndarray,
    query_emb: np.ndarray,
    distance: Distance,
    method: str = "knn",
    k: int = 1,
    n_classes: int | None = None,
    exact: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Predict a class for each query row.

    `distance.matrix(query, ref)` scores queries (signal) against references (unit);
    kNN asks `distance.knn` for the `k` nearest references (SOART3 gamma answers with its
    two-stage search unless `exact` is set) and takes a majority vote.
    Returns `(pred (Nq,) int64, nearest (Nq,) float32)`, the distance to the nearest
    reference (kNN) or prototype.
    """
    ref_labels = np.asarray(ref_labels, dtype=np.int64)
    n_classes = int(n_classes if n_classes is not None else ref_labels.max() + 1)
    if method == "prototype":
        protos = prototypes(ref_emb, ref_labels, n_classes)
        present = ~np.isnan(protos).any(axis=1)
        d = np.asarray(distance.matrix(query_emb, protos[present]), dtype=np.float64)
        best = d.argmin(axis=1)
        return np.flatnonzero(present)[best].astype(np.int64), d[np.arange(len(d)), best].astype(
            np.float32
        )
    if method != "knn":
        raise SoartLabError(f"Unknown classification method {method!r}; use 'knn' or 'prototype'.")
    if len(ref_emb) == 0:
        raise SoartLabError("No reference samples to classify against.")
    k = max(1, min(int(k), len(ref_emb)))
    idx, d = distance.knn(query_emb, ref_emb, k, exact=exact)
    d = np.asarray(d, dtype=np.float64)
    pred = ref_labels[idx[:, 0]] if k == 1 else _vote(ref_labels[idx], d, n_classes)
    return pred.astype(np.int64), d[:, 0].astype(np.float32)


def _vote(labels: np.ndarray, d: np.ndarray, n_classes: int) -> np.ndarray:
    """Majority vote over each row's neighbours (labels, distances: (Nq, k)); ties go to
    the class whose members are closer."""
    rows = np.arange(len(labels))[:, None]
    votes = np.zeros((len(labels), n_classes))
    np.add.at(votes, (rows, labels), 1.0 + 1e-6 / (1.0 + d))
    return votes.argmax(axis=1)


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, label_names: list[str], good_index: int
) -> dict:
    """Accuracy, confusion matrix, per-class precision/recall and the inspection rates.

    escape_rate: fraction of defective samples (true class ≠ good) judged good.
    overkill_rate: fraction of good samples judged defective.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    labels = list(range(len(label_names)))
    confusion = confusion_matrix(y_true, y_pred, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    defect = y_true != good_index
    good = ~defect
    escape = float(np.mean(y_pred[defect] == good_index)) if defect.any() else 0.0
    overkill = float(np.mean(y_pred[good] != good_index)) if good.any() else 0.0
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "escape_rate": escape,
        "overkill_rate": overkill,
        "n_samples": int(len(y_true)),
        "n_defective": int(defect.sum()),
        "n_good": int(good.sum()),
        "confusion": confusion.tolist(),
        "per_class": [
            {
                "label": name,
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(label_names)
        ],
    }


def pca(emb: np.ndarray, n_components: int = 2, seed: int = 0) -> np.ndarray:
    """Project (N, e) embeddings to (N, n_components) with scikit-learn's PCA."""
    if n_components not in (2, 3):
        raise SoartLabError(f"PCA to {n_components} components: choose 2 or 3.")
    if len(emb) < n_components:
        raise SoartLabError(f"PCA needs at least {n_components} samples; got {len(emb)}.")
    return PCA(n_components=n_components, random_state=seed).fit_transform(emb).astype(np.float32)


def pair_distances(
    emb: np.ndarray,
    labels: np.ndarray,
    n_pairs: int,
    distance: Distance,
    seed: int = 0,
    matched_fraction: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Distances of sampled pairs: `(matched (Nm,), unmatched (Nu,))`.

    Pair (i, j) is scored with sample i as the signal and j as the unit.
    """
    i, j, target = sample_pairs(labels, n_pairs, matched_fraction=matched_fraction, seed=seed)
    d = np.asarray(distance.pairwise(emb[i], emb[j]), dtype=np.float64)
    is_matched = target > 0.5
    return d[is_matched], d[~is_matched]
