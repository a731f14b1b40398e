import numpy as np
import pytest
import torch

from soartlab.distances import EuclideanDistance, SOART3Distance
from soartlab.errors import SoartLabError
from soartlab.evaluation import classification_metrics, classify, embed, pair_distances, pca
from soartlab.models import ModelConfig, build_model


def _clusters(seed=0, n=40, dim=8):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim)) * 5
    labels = np.repeat(np.arange(3), n)
    points = centres[labels] + rng.normal(size=(3 * n, dim)) * 0.3
    return points.astype(np.float32), labels


def test_knn_and_prototype_classify_clusters():
    X, y = _clusters()
    X2, y2 = _clusters(seed=0, n=10)  # same centres, fewer points
    for method, k in (("knn", 1), ("knn", 5), ("prototype", 1)):
        pred, nearest = classify(X, y, X2, EuclideanDistance(), method=method, k=k)
        assert (pred == y2).mean() == 1.0
        assert nearest.shape == (len(X2),) and (nearest >= 0).all()


def test_knn_under_soart3_uses_signal_unit_orientation():
    rng = np.random.default_rng(0)
    refs = rng.normal(size=(20, 16)).astype(np.float32)
    labels = np.arange(20) % 4
    queries = refs[:8] * 3.0  # a scaled copy has zero residual against its unit
    pred, nearest = classify(refs, labels, queries, SOART3Distance())
    assert (pred == labels[:8]).all()
    assert np.allclose(nearest, 0.0, atol=1e-3)  # eps in beta leaves a tiny residual


def test_metrics_escape_and_overkill_by_hand():
    names = ["good", "scratch", "dent"]
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 0, 1, 2, 1])
    m = classification_metrics(y_true, y_pred, names, good_index=0)
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["escape_rate"] == pytest.approx(1 / 4)  # one of four defects judged good
    assert m["overkill_rate"] == pytest.approx(1 / 4)  # one of four good parts judged defective
    assert m["confusion"] == [[3, 1, 0], [1, 1, 0], [0, 1, 1]]
    scratch = m["per_class"][1]
    assert scratch["label"] == "scratch" and scratch["precision"] == pytest.approx(1 / 3)
    assert scratch["recall"] == pytest.approx(1 / 2)


def test_embed_batches_match_a_single_pass():
    torch.manual_seed(0)
    model = build_model(ModelConfig(input_shape=(6,), hidden=(8, 8, 8), embedding_dim=4))
    X = np.random.default_rng(0).random((50, 6), dtype=np.float32)
    whole = model.get_embedding(torch.from_numpy(X)).detach().numpy()
    assert np.allclose(embed(model, X, batch_size=7), whole, atol=1e-6)


def test_pca_and_pair_distances():
    X, y = _clusters()
    assert pca(X, 2).shape == (120, 2) and pca(X, 3).shape == (120, 3)
    with pytest.raises(SoartLabError, match="choose 2 or 3"):
        pca(X, 4)
    matched, unmatched = pair_distances(X, y, 400, EuclideanDistance(), seed=0)
    assert len(matched) + len(unmatched) == 400
    assert abs(len(matched) - 200) <= 1
    assert np.median(matched) < np.median(unmatched)


def test_soart3_knn_two_stage_agrees_with_brute_force():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(5, 32))
    ref_labels = np.repeat(np.arange(5), 200)
    refs = (centres[ref_labels] + 0.4 * rng.normal(size=(1000, 32))).astype(np.float32)
    queries = (centres[np.arange(300) % 5] + 0.4 * rng.normal(size=(300, 32))).astype(np.float32)
    distance = SOART3Distance()
    fast, fast_d = classify(refs, ref_labels, queries, distance, k=3)
    exact, exact_d = classify(refs, ref_labels, queries, distance, k=3, exact=True)
    brute = distance.matrix(queries, refs)
    assert np.allclose(exact_d, brute.min(axis=1), atol=1e-5)
    assert (fast == exact).mean() >= 0.99


def test_knn_classify_asks_the_distance_for_its_neighbours():
    class Recording(EuclideanDistance):
        def __init__(self):
            super().__init__()
            self.calls = []

        def knn(self, q, r, k=1, *, exact=False):
            self.calls.append((len(q), len(r), k, exact))
            return super().knn(q, r, k, exact=exact)

    X, y = _clusters()
    distance = Recording()
    pred, nearest = classify(X, y, X[:5], distance, k=3, exact=True)
    assert distance.calls == [(5, len(X), 3, True)]
    assert (pred == y[:5]).all() and np.allclose(nearest, 0.0)
