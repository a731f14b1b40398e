"""Two-stage SOART3 nearest-neighbour search against the exhaustive search."""

import numpy as np
import pytest
import torch

from soartlab.errors import SoartLabError
from soartlab.metric import soart3, soart3_pairwise
from soartlab.search import DEFAULT_CANDIDATES, soart3_knn


def clustered(n_queries: int, n_refs: int, d: int = 32, n_clusters: int = 8, seed: int = 0):
    """Queries and references drawn around shared cluster centres, with per-sample gain
    (SOART3's beta) and noise: the kind of structure embeddings of labelled data have."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, d)).astype(np.float32)

    def draw(n):
        labels = rng.integers(n_clusters, size=n)
        gain = rng.uniform(0.7, 1.3, size=(n, 1)).astype(np.float32)
        noise = 0.3 * rng.normal(size=(n, d)).astype(np.float32)
        return gain * centres[labels] + noise

    return draw(n_queries), draw(n_refs)


def brute_force(Q, R, k):
    gamma = soart3_pairwise(Q, R)
    order = np.argsort(gamma, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(gamma, order, axis=1)


def test_two_stage_agrees_with_brute_force_on_clustered_data():
    Q, R = clustered(300, 2000)
    expected, expected_gamma = brute_force(Q, R, k=1)
    found, gamma = soart3_knn(Q, R, k=1)  # default candidates: the two-stage path
    agreement = np.mean(found[:, 0] == expected[:, 0])
    assert agreement >= 0.99
    agree = found[:, 0] == expected[:, 0]
    np.testing.assert_allclose(gamma[agree], expected_gamma[agree], rtol=1e-5, atol=1e-6)


def test_two_stage_top_k_sets_agree():
    Q, R = clustered(200, 1500, seed=1)
    expected, _ = brute_force(Q, R, k=5)
    found, gamma = soart3_knn(Q, R, k=5)
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(found, expected, strict=True)])
    assert overlap >= 0.99
    assert np.all(np.diff(gamma, axis=1) >= 0)  # nearest first


def test_returned_gamma_is_exact_soart3_of_the_pair():
    Q, R = clustered(50, 400, seed=2)
    found, gamma = soart3_knn(Q, R, k=3, candidates=8)
    for i in range(len(Q)):
        _, _, exact = soart3(np.repeat(Q[i : i + 1], 3, axis=0), R[found[i]])
        np.testing.assert_allclose(gamma[i], exact, rtol=1e-5, atol=1e-6)


def test_exact_equals_brute_force():
    Q, R = clustered(120, 700, seed=3)
    expected, expected_gamma = brute_force(Q, R, k=4)
    found, gamma = soart3_knn(Q, R, k=4, exact=True)
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_array_equal(gamma, expected_gamma)


def test_candidates_none_or_at_least_all_references_is_exact():
    Q, R = clustered(40, 30, seed=4)
    expected, _ = brute_force(Q, R, k=2)
    for candidates in (None, 30, 1000):
        found, _ = soart3_knn(Q, R, k=2, candidates=candidates)
        np.testing.assert_array_equal(found, expected)


def test_orientation_query_is_the_signal():
    # SOART3 is not symmetric: gamma(y=Q[i], x=R[j]) is what must be ranked.
    Q, R = clustered(60, 500, seed=5)
    found, gamma = soart3_knn(Q, R, k=1, exact=True)
    transposed = soart3_pairwise(R, Q).T
    assert not np.allclose(gamma[:, 0], transposed.min(axis=1))


def test_dtypes_and_torch_input():
    Q, R = clustered(30, 200, seed=6)
    idx32, gamma32 = soart3_knn(Q, R)
    assert idx32.dtype == np.int64 and idx32.shape == (30, 1)
    assert gamma32.dtype == np.float32
    idx64, gamma64 = soart3_knn(Q.astype(np.float64), R.astype(np.float64))
    assert gamma64.dtype == np.float64
    np.testing.assert_array_equal(idx32, idx64)
    idx_t, _ = soart3_knn(torch.from_numpy(Q), torch.from_numpy(R))
    np.testing.assert_array_equal(idx_t, idx32)


def test_blocks_cover_every_query(monkeypatch):
    import soartlab.search as search

    Q, R = clustered(37, 300, seed=7)
    whole, _ = soart3_knn(Q, R, k=2)
    monkeypatch.setattr(search, "_QUERY_BLOCK_BYTES", 300 * 4 * 3 * 5)  # 5 queries a block
    blocked, _ = soart3_knn(Q, R, k=2)
    np.testing.assert_array_equal(blocked, whole)


def test_no_queries():
    _, R = clustered(1, 50)
    idx, gamma = soart3_knn(np.zeros((0, R.shape[1]), np.float32), R, k=2)
    assert idx.shape == (0, 2) and gamma.shape == (0, 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be an integer from 1 to len"),
        ({"k": 51}, "k must be an integer from 1 to len"),
        ({"candidates": 0}, "candidates must be a positive integer"),
        ({"p_v": -1}, "p_v must be a positive number"),
    ],
)
def test_bad_arguments(kwargs, message):
    Q, R = clustered(5, 50)
    with pytest.raises(SoartLabError, match=message):
        soart3_knn(Q, R, **kwargs)


def test_bad_shapes():
    Q, R = clustered(5, 50)
    with pytest.raises(SoartLabError, match="same number of columns"):
        soart3_knn(Q[:, :3], R)
    with pytest.raises(SoartLabError, match="2-D"):
        soart3_knn(Q[0], R)
    with pytest.raises(SoartLabError, match="no reference rows"):
        soart3_knn(Q, R[:0])


def test_default_candidates_is_documented_value():
    assert DEFAULT_CANDIDATES >= 8


# --- the cell index, for many references ------------------------------------------------


@pytest.fixture
def small_index(monkeypatch):
    """The cell index from 1,000 references, with cells of about 32 and at least 4
    probed, so that a small set exercises what the defaults do from 32,768 references; a
    spy counts the queries it answered."""
    from soartlab import search

    monkeypatch.setattr(search, "INDEX_MIN_REFS", 1000)
    monkeypatch.setattr(search, "CELL_REFS", 32)
    monkeypatch.setattr(search, "PROBES", 4)
    search._INDEX_CACHE.clear()
    answered = []
    original = search.CellIndex.search

    def spy(self, q_block, *args):
        answered.append(len(q_block))
        return original(self, q_block, *args)

    monkeypatch.setattr(search.CellIndex, "search", spy)
    yield answered
    search._INDEX_CACHE.clear()


def test_cell_index_finds_as_near_a_reference_as_brute_force(small_index):
    Q, R = clustered(300, 4000, seed=3)
    _, expected_gamma = brute_force(Q, R, k=1)
    found, gamma = soart3_knn(Q, R, k=1)
    assert sum(small_index) > len(Q)  # the index answered (the tuning's sample, then all)
    assert np.mean(gamma[:, 0] <= expected_gamma[:, 0] + 1e-6) >= 0.95
    # the indices are the caller's: each returned gamma is that pair's exact gamma
    _, _, exact = soart3(Q, R[found[:, 0]])
    np.testing.assert_allclose(gamma[:, 0], exact, rtol=1e-5, atol=1e-6)


def test_cell_index_top_k(small_index, monkeypatch):
    from soartlab import search

    # k = 5 keeps 80 candidates a score: more than cells of 32 can give
    monkeypatch.setattr(search, "CELL_REFS", 128)
    Q, R = clustered(200, 4000, seed=4)
    expected, _ = brute_force(Q, R, k=5)
    found, gamma = soart3_knn(Q, R, k=5)
    assert small_index
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(found, expected, strict=True)])
    assert overlap >= 0.95
    assert np.all(np.diff(gamma, axis=1) >= 0)


def test_cell_index_finds_a_reference_pointing_the_other_way(small_index):
    """gamma is the same for a reference and its negative (beta takes the sign), so
    the cells are probed by |cos|."""
    Q, R = clustered(100, 4000, seed=5)
    R = R.copy()
    R[:100] = -2 * Q  # each query's line, pointing away
    found, gamma = soart3_knn(Q, R, k=1)
    assert small_index
    assert np.mean(found[:, 0] == np.arange(100)) >= 0.99
    assert np.all(gamma[:, 0] < 1e-3)


def test_references_without_structure_are_searched_without_the_index(small_index):
    """Gaussian vectors have no cells to speak of: the check on a sample of the queries
    fails, and the answer is the search without the index."""
    from soartlab import search

    rng = np.random.default_rng(0)
    Q, R = rng.normal(size=(300, 32)), rng.normal(size=(4000, 32))
    assert search.cell_index(R, 4, 1, 1e-4) is None
    found, gamma = soart3_knn(Q, R, k=1)
    assert sum(small_index) % search.INDEX_CHECK_QUERIES == 0  # the tuning only
    flat, flat_gamma = soart3_knn(Q, R, k=1, candidates=DEFAULT_CANDIDATES)
    np.testing.assert_array_equal(found, flat)
    np.testing.assert_array_equal(gamma, flat_gamma)


def test_the_index_is_kept_for_the_same_references(small_index):
    from soartlab.search import cell_index

    _, R = clustered(0, 4000, seed=6)
    first = cell_index(R, 4, 1, 1e-4)
    assert first is not None and first.probes >= 4
    assert cell_index(R.copy(), 4, 1, 1e-4) is first
    changed = R.copy()
    changed[0, 0] += 1
    assert cell_index(changed, 4, 1, 1e-4) is not first
    assert cell_index(R, 4, 1, 1e-3) is not first
