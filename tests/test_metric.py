import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import minkowski

from soartlab.errors import SoartLabError
from soartlab.metric import soart3, soart3_pairwise

ORDERS = [(4, 1), (2, 1), (3, 1.5), (4, 2), (math.inf, 1), (0.5, 3)]


def article_soart3(y, x, p_v=4, p_m=1, eps=1e-4):
    """The article's formula, computed the article's way: one pair at a time."""
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    beta = (np.dot(x, y) + eps) / (np.dot(x, x) + eps)
    m = minkowski(y, beta * x, p_m)
    v = minkowski(y, beta * x, p_v)
    return beta, math.log(1 + m), math.log(1 + m) - math.log(1 + v)


def article_rows(Y, X, **kw):
    return np.array([article_soart3(y, x, **kw) for y, x in zip(Y, X, strict=True)]).T


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("p_v,p_m", ORDERS)
def test_1d_matches_the_article(rng, p_v, p_m):
    for _ in range(5):
        y, x = rng.normal(size=16), rng.normal(size=16)
        got = soart3(y, x, p_v=p_v, p_m=p_m)
        assert all(isinstance(v, float) for v in got)
        np.testing.assert_allclose(got, article_soart3(y, x, p_v=p_v, p_m=p_m), rtol=1e-12)


def test_known_values():
    y, x = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    beta, yita, gamma = soart3(y, x)
    # beta = eps / (1 + eps); residual (1, -beta)
    b = 1e-4 / (1 + 1e-4)
    assert beta == pytest.approx(b)
    assert yita == pytest.approx(math.log(2 + b))
    assert gamma == pytest.approx(math.log(2 + b) - math.log(1 + (1 + b**4) ** 0.25))
    # identical vectors: no residual at all
    assert soart3(x, x) == (1.0, 0.0, 0.0)


@pytest.mark.parametrize("p_v,p_m", ORDERS)
def test_rows_match_the_article_numpy_and_torch(rng, p_v, p_m):
    Y, X = rng.normal(size=(40, 12)), rng.normal(size=(40, 12))
    X[3] = 0.0  # zero unit
    Y[5] = 0.0  # zero signal
    Y[7] = X[7]  # identical
    Y[8] = 2.5 * X[8]  # pure scaling: zero residual
    expected = article_rows(Y, X, p_v=p_v, p_m=p_m)
    got = soart3(Y, X, p_v=p_v, p_m=p_m)
    assert all(isinstance(a, np.ndarray) and a.shape == (40,) for a in got)
    np.testing.assert_allclose(np.array(got), expected, rtol=1e-10, atol=1e-12)
    got_t = soart3(torch.from_numpy(Y), torch.from_numpy(X), p_v=p_v, p_m=p_m)
    assert all(isinstance(a, torch.Tensor) and a.dtype == torch.float64 for a in got_t)
    np.testing.assert_allclose(
        np.array([a.numpy() for a in got_t]), expected, rtol=1e-10, atol=1e-12
    )


def test_integer_and_float32_dtypes(rng):
    Y = rng.integers(-5, 6, size=(20, 9))
    X = rng.integers(-5, 6, size=(20, 9))
    got = soart3(Y, X)
    assert all(a.dtype == np.float64 for a in got)
    np.testing.assert_allclose(np.array(got), article_rows(Y, X), rtol=1e-12)
    got32 = soart3(Y.astype(np.float32), X.astype(np.float32))
    assert all(a.dtype == np.float32 for a in got32)
    np.testing.assert_allclose(np.array(got32), article_rows(Y, X), rtol=1e-4, atol=1e-5)
    got_t = soart3(torch.from_numpy(Y), torch.from_numpy(X))
    assert all(a.dtype == torch.float64 for a in got_t)
    assert soart3(list(Y[0]), list(X[0]))[2] == pytest.approx(article_soart3(Y[0], X[0])[2])


def test_torch_1d_returns_scalar_tensors(rng):
    y, x = rng.normal(size=8), rng.normal(size=8)
    beta, yita, gamma = soart3(torch.tensor(y), torch.tensor(x))
    assert gamma.shape == ()
    assert gamma.item() == pytest.approx(article_soart3(y, x)[2], rel=1e-12)


def test_not_symmetric(rng):
    y, x = rng.normal(size=10), rng.normal(size=10)
    assert soart3(y, x)[2] != pytest.approx(soart3(x, y)[2])


def test_torch_gradients_finite_at_zero_residual(rng):
    X = torch.tensor(rng.normal(size=(4, 6)), requires_grad=True)
    X = torch.cat([X[:3], torch.zeros(1, 6)]).detach().requires_grad_(True)
    Y = torch.cat([X[:1].detach(), torch.zeros(1, 6), torch.randn(1, 6), torch.zeros(1, 6)])
    Y = Y.double().requires_grad_(True)
    beta, yita, gamma = soart3(Y, X)  # rows: y == x, y == 0, ordinary, y == x == 0
    (beta.sum() + yita.sum() + gamma.sum()).backward()
    assert torch.isfinite(X.grad).all() and torch.isfinite(Y.grad).all()
    assert gamma[0].item() == 0.0 and gamma[3].item() == 0.0 and yita[0].item() == 0.0
    assert Y.grad[2].abs().sum() > 0  # an ordinary row gets a real gradient


def test_torch_gradient_matches_finite_differences(rng):
    Y = torch.tensor(rng.normal(size=(3, 5)), requires_grad=True)
    X = torch.tensor(rng.normal(size=(3, 5)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: soart3(a, b)[2], (Y, X))
    assert torch.autograd.gradcheck(lambda a, b: soart3(a, b, p_v=3, p_m=2)[1], (Y, X))


def test_shape_errors():
    with pytest.raises(SoartLabError, match=r"y \(3,\).*x \(4,\)"):
        soart3(np.zeros(3), np.zeros(4))
    with pytest.raises(SoartLabError, match=r"\(2, 2, 2\)"):
        soart3(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)))
    with pytest.raises(SoartLabError, match="p_v must be a positive"):
        soart3(np.ones(3), np.ones(3), p_v=0)
    with pytest.raises(SoartLabError, match="eps"):
        soart3(np.ones(3), np.ones(3), eps=float("nan"))
    with pytest.raises(SoartLabError, match=r"Q \(2, 3\).*R \(2, 4\)"):
        soart3_pairwise(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(SoartLabError, match="component"):
        soart3_pairwise(np.zeros((2, 3)), np.zeros((2, 3)), component="delta")


@pytest.mark.parametrize("p_v,p_m", ORDERS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pairwise_orientation_and_values(rng, p_v, p_m, dtype):
    Q = rng.normal(size=(7, 11)).astype(dtype)
    R = rng.normal(size=(5, 11)).astype(dtype)
    Q[2] = R[1]
    R[4] = 0.0
    expected = {
        c: np.array([[article_soart3(q, r, p_v=p_v, p_m=p_m)[k] for r in R] for q in Q])
        for k, c in enumerate(("beta", "yita", "gamma"))
    }
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)
    for component, want in expected.items():
        got = soart3_pairwise(Q, R, p_v=p_v, p_m=p_m, component=component)
        assert got.shape == (7, 5) and got.dtype == dtype
        np.testing.assert_allclose(got, want, **tol)
        got_t = soart3_pairwise(
            torch.from_numpy(Q), torch.from_numpy(R), p_v=p_v, p_m=p_m, component=component
        )
        np.testing.assert_allclose(got_t.numpy(), want, **tol)
    assert expected["gamma"][2, 1] == 0.0
    assert abs(soart3_pairwise(Q, R)[2, 1]) < (1e-9 if dtype == np.float64 else 1e-4)


def test_pairwise_equals_rowwise_and_is_not_symmetric(rng):
    A = rng.normal(size=(6, 8))
    G = soart3_pairwise(A, A)
    ii, jj = np.meshgrid(np.arange(6), np.arange(6), indexing="ij")
    rowwise = soart3(A[ii.ravel()], A[jj.ravel()])[2].reshape(6, 6)
    np.testing.assert_allclose(G, rowwise, rtol=1e-12, atol=1e-14)
    assert not np.allclose(G, G.T)
    np.testing.assert_allclose(np.diag(G), 0.0, atol=1e-12)


def test_pairwise_chunking_gives_same_result(rng):
    Q, R = rng.normal(size=(23, 9)), rng.normal(size=(17, 9))
    full = soart3_pairwise(Q, R)
    for max_bytes in (1, 9 * 8, 9 * 8 * 5, 9 * 8 * 40):
        np.testing.assert_allclose(
            soart3_pairwise(Q, R, max_chunk_bytes=max_bytes), full, rtol=1e-12
        )
        got_y = soart3_pairwise(Q, R, component="yita", max_chunk_bytes=max_bytes)
        np.testing.assert_allclose(got_y, soart3_pairwise(Q, R, component="yita"), rtol=1e-12)


def test_pairwise_torch_differentiable(rng):
    Q = torch.tensor(rng.normal(size=(4, 6)), requires_grad=True)
    R = torch.tensor(rng.normal(size=(3, 6)), requires_grad=True)
    G = soart3_pairwise(Q, R, max_chunk_bytes=6 * 8 * 2)
    G.sum().backward()
    ref_Q, ref_R = Q.detach().clone().requires_grad_(True), R.detach().clone().requires_grad_(True)
    soart3(ref_Q.repeat_interleave(3, 0), ref_R.repeat(4, 1))[2].sum().backward()
    torch.testing.assert_close(Q.grad, ref_Q.grad)
    torch.testing.assert_close(R.grad, ref_R.grad)


def test_pairwise_empty():
    assert soart3_pairwise(np.zeros((0, 3)), np.ones((4, 3))).shape == (0, 4)
    assert soart3_pairwise(np.ones((2, 3)), np.ones((0, 3))).shape == (2, 0)
