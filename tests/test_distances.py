import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from soartlab.distances import (
    DISTANCE_NAMES,
    ChebyshevDistance,
    CosineDistance,
    EuclideanDistance,
    MinkowskiDistance,
    SOART3Distance,
    get_distance,
)
from soartlab.errors import SoartLabError
from soartlab.metric import soart3, soart3_pairwise
from soartlab.transform import GammaTransform

SCIPY_EQUIVALENTS = [
    (EuclideanDistance(), dict(metric="euclidean")),
    (MinkowskiDistance(p=3.0), dict(metric="minkowski", p=3.0)),
    (MinkowskiDistance(p=1.5), dict(metric="minkowski", p=1.5)),
    (ChebyshevDistance(), dict(metric="chebyshev")),
    (CosineDistance(), dict(metric="cosine")),
]


@pytest.fixture
def data():
    rng = np.random.default_rng(1)
    return rng.normal(size=(9, 7)), rng.normal(size=(6, 7))


@pytest.mark.parametrize("distance,scipy_kw", SCIPY_EQUIVALENTS, ids=lambda v: repr(v))
def test_matches_scipy_cdist(data, distance, scipy_kw):
    Q, R = data
    expected = cdist(Q, R, **scipy_kw)
    got = distance.matrix(Q, R)
    assert isinstance(got, np.ndarray) and got.shape == (9, 6)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    got_t = distance.matrix(torch.from_numpy(Q), torch.from_numpy(R))
    assert isinstance(got_t, torch.Tensor)
    np.testing.assert_allclose(got_t.numpy(), expected, rtol=1e-10, atol=1e-12)
    rows = distance.pairwise(Q[:6], R)
    np.testing.assert_allclose(rows, np.diag(expected[:6]), rtol=1e-10, atol=1e-12)


ALL = [get_distance(name) for name in DISTANCE_NAMES] + [
    SOART3Distance(p_v=3, p_m=2),
    MinkowskiDistance(p=1.0),
]


@pytest.mark.parametrize("distance", ALL, ids=repr)
def test_pairwise_agrees_with_matrix(data, distance):
    Q, R = data
    M = distance.matrix(Q, R)
    ii, jj = np.meshgrid(np.arange(9), np.arange(6), indexing="ij")
    rows = distance.pairwise(Q[ii.ravel()], R[jj.ravel()]).reshape(9, 6)
    np.testing.assert_allclose(M, rows, rtol=1e-9, atol=1e-12)
    assert distance.smaller_is_closer
    # identical vectors are at distance 0 (no other row is closer)
    self_d = distance.pairwise(Q, Q)
    np.testing.assert_allclose(self_d, 0.0, atol=1e-9)
    assert (distance.matrix(Q, Q) >= np.diag(distance.matrix(Q, Q))[:, None] - 1e-9).all()


@pytest.mark.parametrize("distance", ALL, ids=repr)
def test_torch_gradients_finite_including_identical_rows(distance):
    torch.manual_seed(0)
    a = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    b = torch.cat([a[:2].detach(), torch.zeros(1, 4), torch.randn(2, 4, dtype=torch.float64)])
    b.requires_grad_(True)
    d = distance.pairwise(a, b)
    assert d.shape == (5,) and d.requires_grad
    (d.sum() + distance.matrix(a, b).sum()).backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()


def test_float32_stays_float32(data):
    Q, R = (x.astype(np.float32) for x in data)
    for distance in ALL:
        assert distance.matrix(Q, R).dtype == np.float32
        assert distance.pairwise(Q[:6], R).dtype == np.float32


def test_soart3_distance_is_raw_gamma_in_signal_unit_orientation(data):
    Q, R = data
    distance = SOART3Distance(p_v=3, p_m=1)
    np.testing.assert_allclose(
        distance.pairwise(Q[:6], R), soart3(Q[:6], R, p_v=3, p_m=1)[2], rtol=1e-12
    )
    np.testing.assert_allclose(distance.matrix(Q, R), soart3_pairwise(Q, R, p_v=3), rtol=1e-12)
    # a is the signal: swapping the arguments changes the value
    assert not np.allclose(distance.pairwise(Q[:6], R), distance.pairwise(R, Q[:6]))


def test_get_distance_soart3_is_raw_gamma(data):
    Q, R = data
    distance = get_distance("soart3")
    np.testing.assert_allclose(distance.pairwise(Q[:6], R), soart3(Q[:6], R)[2], rtol=1e-12)
    np.testing.assert_allclose(distance.matrix(Q, R), soart3_pairwise(Q, R), rtol=1e-12)
    assert distance.params() == {"p_v": 4.0, "p_m": 1.0, "eps": 1e-4}


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("distance", ALL, ids=repr)
def test_knn_agrees_with_argsort_of_matrix(data, distance, k):
    Q, R = data
    M = distance.matrix(Q, R)
    expected = np.argsort(M, axis=1, kind="stable")[:, :k]
    # exact=True: the brute-force answer for every distance, SOART3 gamma included
    idx, d = distance.knn(Q, R, k, exact=True)
    assert idx.shape == d.shape == (9, k) and idx.dtype == np.int64
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_allclose(d, np.take_along_axis(M, expected, 1), rtol=1e-9, atol=1e-12)
    # the default search: the same on 6 references (fewer than any candidate count)
    np.testing.assert_array_equal(distance.knn(Q, R, k)[0], expected)
    idx_t, d_t = distance.knn(torch.from_numpy(Q), torch.from_numpy(R), k)
    np.testing.assert_array_equal(idx_t, expected)


def test_brute_force_knn_in_blocks_and_ties(data, monkeypatch):
    Q, R = data
    R = np.vstack([R, R[2]])  # row 6 ties row 2 for every query
    distance = EuclideanDistance()
    whole = distance.knn(Q, R, 3)
    monkeypatch.setattr("soartlab.distances.KNN_BLOCK_BYTES", 1)  # one query a block
    blocked = distance.knn(Q, R, 3)
    np.testing.assert_array_equal(whole[0], blocked[0])
    np.testing.assert_array_equal(whole[1], blocked[1])
    ties = distance.knn(R[2:3], R, 2)[0]
    np.testing.assert_array_equal(ties, [[2, 6]])  # the lower index first
    assert distance.knn(Q[:0], R, 2)[0].shape == (0, 2)
    with pytest.raises(SoartLabError, match=r"k must be an integer from 1 to len\(r\) = 7"):
        distance.knn(Q, R, 8)


def test_soart3_two_stage_knn_agrees_with_exact():
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(4, 16))
    R = (centres[np.arange(400) % 4] + 0.5 * rng.normal(size=(400, 16))).astype(np.float32)
    Q = (centres[np.arange(60) % 4] + 0.5 * rng.normal(size=(60, 16))).astype(np.float32)
    distance = get_distance("soart3")
    fast_idx, fast_d = distance.knn(Q, R, 3)
    exact_idx, exact_d = distance.knn(Q, R, 3, exact=True)
    assert fast_d.dtype == np.float32
    assert (fast_idx[:, 0] == exact_idx[:, 0]).mean() >= 0.95
    # whatever it returns is scored exactly, and never closer than the true nearest
    np.testing.assert_allclose(
        fast_d, np.take_along_axis(distance.matrix(Q, R), fast_idx, 1), rtol=1e-4, atol=1e-5
    )
    assert (fast_d[:, 0] >= exact_d[:, 0] - 1e-6).all()


def test_soart3_beta_and_yita(data):
    Q, R = data
    beta, yita, _ = soart3(Q[:6], R)
    np.testing.assert_allclose(get_distance("soart3_beta").pairwise(Q[:6], R), np.abs(1 - beta))
    np.testing.assert_allclose(get_distance("soart3_yita").pairwise(Q[:6], R), yita)
    with pytest.raises(SoartLabError, match="component must be gamma, yita or beta"):
        SOART3Distance(component="delta")


def test_cosine_zero_vectors_are_safe():
    z, a = np.zeros((1, 3)), np.array([[1.0, 2.0, 3.0]])
    assert CosineDistance().pairwise(z, a)[0] == pytest.approx(1.0)
    assert CosineDistance().matrix(np.vstack([z, a]), a)[0, 0] == pytest.approx(1.0)
    assert CosineDistance().pairwise(a, -a)[0] == pytest.approx(2.0)


def test_chunked_generic_matrix(data):
    Q, R = data
    distance = CosineDistance()
    full = distance.matrix(Q, R)
    distance.max_chunk_bytes = 1
    np.testing.assert_allclose(
        super(CosineDistance, distance)._matrix(torch.from_numpy(Q), torch.from_numpy(R)).numpy(),
        full,
        rtol=1e-12,
    )
    small = SOART3Distance(max_chunk_bytes=7 * 8)
    np.testing.assert_allclose(small.matrix(Q, R), SOART3Distance().matrix(Q, R), rtol=1e-12)


def test_get_distance_names_params_and_round_trip():
    assert DISTANCE_NAMES == (
        "soart3",
        "soart3_yita",
        "soart3_beta",
        "euclidean",
        "minkowski",
        "chebyshev",
        "cosine",
    )
    for name in DISTANCE_NAMES:
        d = get_distance(name)
        assert d.name == name
        assert get_distance(d.name, **d.params()) == d
    d = get_distance("soart3", p_v=6)
    assert d.p_v == 6 and get_distance(d.name, **d.params()) == d
    assert get_distance("minkowski", p=5).p == 5.0
    assert get_distance("Euclidean") == EuclideanDistance()


def test_get_distance_errors():
    with pytest.raises(
        SoartLabError, match="unknown distance 'manhattan'.*soart3, soart3_yita.*cosine"
    ):
        get_distance("manhattan")
    with pytest.raises(
        SoartLabError, match="'euclidean' takes no parameter.*p.*valid parameters: none"
    ):
        get_distance("euclidean", p=2)
    with pytest.raises(SoartLabError, match="'soart3_yita' takes no parameter.*transform"):
        get_distance("soart3_yita", transform=None)
    with pytest.raises(SoartLabError, match="p must be a positive"):
        get_distance("minkowski", p=-1)


def test_soart3_spec_of_an_older_run_loads_and_a_transform_is_refused():
    # run.json files written before the transform moved to the loss hold "transform": null
    old_spec = {"name": "soart3", "transform": None, "p_v": 4.0, "p_m": 1.0, "eps": 1e-4}
    spec = dict(old_spec)
    assert get_distance(spec.pop("name"), **spec) == get_distance("soart3")
    with pytest.raises(
        SoartLabError, match=r"takes no transform.*ContrastiveLoss\(distance, margin, transform="
    ):
        get_distance("soart3", transform={"scale": 1.0, "offset": 0.0, "floor": 0.0})
    with pytest.raises(SoartLabError, match="takes no transform"):
        get_distance("soart3", transform=GammaTransform())


def test_shape_errors():
    with pytest.raises(SoartLabError, match=r"a \(3, 2\) and b \(3, 4\)"):
        EuclideanDistance().pairwise(np.zeros((3, 2)), np.zeros((3, 4)))
    with pytest.raises(SoartLabError, match=r"q \(3, 2\) and r \(3, 4\)"):
        SOART3Distance().matrix(np.zeros((3, 2)), np.zeros((3, 4)))


def test_empty_matrix():
    for distance in ALL:
        assert distance.matrix(np.zeros((0, 3)), np.ones((2, 3))).shape == (0, 2)
        assert not math.isnan(distance.matrix(np.ones((1, 3)), np.ones((1, 3)))[0, 0])


def test_soart3_components_are_different_distances():
    gamma, yita, beta = (get_distance(n) for n in ("soart3", "soart3_yita", "soart3_beta"))
    assert len({gamma, yita, beta}) == 3 and gamma != yita
    assert get_distance("soart3") == gamma
