"""Why a part failed: nearest references, the SOART3 residual and gradient heatmaps on a
scale fixed from the training parts, and their PNG."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from soartlab.data import from_arrays, to_arrays
from soartlab.distances import EuclideanDistance, SOART3Distance
from soartlab.explain import (
    NO_REFERENCE,
    closest_good_in_pixels,
    distance_gradient,
    explain_parts,
    heatmap_scale,
    nearest_references,
    reference_rows,
    reference_samples,
    residual_map,
)
from soartlab.plots.heatmaps import UPSCALE, colour_values, explanation_png


class Identity(torch.nn.Module):
    """An 'embedding' that is the input itself: the tests then know every distance."""

    def get_embedding(self, x):
        return x * 1.0


class Linear(torch.nn.Module):
    def __init__(self, weight):
        super().__init__()
        self.weight = torch.tensor(weight, dtype=torch.float32)

    def get_embedding(self, x):
        return x @ self.weight.T


def test_residual_equals_a_direct_computation_with_soart3s_beta():
    rng = np.random.default_rng(1)
    y, x = rng.normal(size=(5, 30)), rng.normal(size=(5, 30))
    eps = 1e-4
    beta = (np.einsum("ij,ij->i", x, y) + eps) / (np.einsum("ij,ij->i", x, x) + eps)
    np.testing.assert_allclose(residual_map(y, x), y - beta[:, None] * x, rtol=1e-10)
    # a part that is its reference scaled has no residual
    np.testing.assert_allclose(residual_map(1.7 * x, x), 0.0, atol=1e-4)


def test_nearest_good_and_defect_references_with_their_distances():
    refs = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0], [6.0, 5.0]], dtype=np.float32)
    labels = np.array([0, 0, 1, 2])
    query = np.array([[0.9, 0.0], [5.8, 5.0], [np.nan, 0.0]], dtype=np.float32)
    found = nearest_references(query, refs, labels, 0, EuclideanDistance())
    assert found.good.tolist() == [1, 1, NO_REFERENCE]
    assert found.defect.tolist() == [2, 3, NO_REFERENCE]
    assert found.defect_class.tolist() == [1, 2, NO_REFERENCE]
    np.testing.assert_allclose(found.good_distance[:2], [0.1, np.hypot(4.8, 5.0)], rtol=1e-5)
    np.testing.assert_allclose(found.defect_distance[:2], [np.hypot(4.1, 5.0), 0.2], rtol=1e-5)
    assert np.isnan(found.good_distance[2]) and np.isnan(found.defect_distance[2])


def test_gradient_is_that_of_the_distance_between_embeddings():
    rng = np.random.default_rng(2)
    weight = rng.normal(size=(3, 6))
    parts, units = rng.normal(size=(4, 6)), rng.normal(size=(4, 3))
    got = distance_gradient(Linear(weight), EuclideanDistance(), parts, units)
    diff = parts @ weight.T - units  # d = ||W y − u||, so ∂d/∂y = Wᵀ (W y − u) / d
    expected = np.abs(diff @ weight / np.linalg.norm(diff, axis=1, keepdims=True))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


SIDE = 20


def _images(rng, n, defect, side=SIDE):
    """Good parts: one pattern under a random gain and faint noise; defects add a bright
    2×2 patch at rows 2–3, columns 4–5."""
    pattern = np.linspace(0.2, 0.8, side * side).reshape(side, side)
    gain = rng.uniform(0.8, 1.2, size=(n, 1, 1))
    x = gain * pattern + rng.normal(0, 0.01, size=(n, side, side))
    if defect:
        x[:, 2:4, 4:6] += 0.5
    return x.reshape(n, -1).astype(np.float32)


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(0)
    ref_x = np.vstack([_images(rng, 60, False), _images(rng, 20, True)])
    ref_labels = np.r_[np.zeros(60, int), np.ones(20, int)]
    parts = np.vstack([_images(rng, 1, False), _images(rng, 1, True)])
    model, distance = Identity(), EuclideanDistance()
    scale = heatmap_scale(model, distance, ref_x, ref_x, ref_labels, 0, max_parts=40)
    explanation = explain_parts(model, distance, (ref_x, ref_labels), 0, parts, parts, ref_x)
    return ref_x, ref_labels, parts, scale, explanation


def test_a_good_part_stays_pale_and_a_defective_one_lights_up(synthetic):
    _, ref_labels, _, scale, explanation = synthetic
    assert explanation.has_heatmap.all()
    assert ref_labels[explanation.unit].tolist() == [0, 0]  # the residual is against good parts
    good_share, defect_share = (np.abs(explanation.residual) / scale.residual).reshape(
        2, SIDE, SIDE
    )
    assert (good_share > 1).mean() <= 0.05  # as pale as the training parts: ≤ 1 % above, some slack
    assert (defect_share[2:4, 4:6] > 3).all()  # the patch is far beyond the scale
    assert (defect_share > 1).sum() < 10  # and little else lights up
    # the same in colour: the end colours of the map only where the scale is passed
    tiles = [
        colour_values(r.reshape(SIDE, SIDE), -scale.residual, scale.residual, "RdBu_r")
        for r in explanation.residual
    ]
    ends = colour_values(
        np.array([[-1.0, 1.0]]) * scale.residual, -scale.residual, scale.residual, "RdBu_r"
    )[0]
    strong = [(tile[..., None, :] == ends).all(axis=-1).any(axis=-1) for tile in tiles]
    assert strong[0].mean() <= 0.05
    assert strong[1][2:4, 4:6].all()


def test_the_scale_is_taken_from_good_parts_against_other_good_parts(synthetic):
    ref_x, ref_labels, _, scale, _ = synthetic
    good = ref_x[ref_labels == 0]
    # against themselves a residual is 0: the scale would be (nearly) 0
    assert scale.residual > 0.005
    closest = closest_good_in_pixels(good, good, exclude=np.arange(len(good)))
    assert (closest != np.arange(len(good))).all()
    assert scale.n_parts == 40 and scale.percentile == 99.0
    # fixed by the training parts: the defect scale is the same whatever part is shown
    doubled = heatmap_scale(
        Identity(), EuclideanDistance(), ref_x, ref_x, ref_labels, 0, max_parts=40
    )
    assert doubled == scale


def test_without_reference_pixels_only_the_nearest_references_are_given(synthetic):
    ref_x, ref_labels, parts, _, _ = synthetic
    bad = np.vstack([parts, np.full((1, parts.shape[1]), np.nan, np.float32)])
    explanation = explain_parts(Identity(), EuclideanDistance(), (ref_x, ref_labels), 0, bad, bad)
    assert explanation.residual is None and explanation.unit is None
    assert explanation.nearest.good[2] == NO_REFERENCE
    with_pixels = explain_parts(
        Identity(), EuclideanDistance(), (ref_x, ref_labels), 0, bad, bad, ref_x
    )
    assert with_pixels.has_heatmap.tolist() == [True, True, False]


def test_explanation_png_has_a_tile_each_at_the_fixed_scale(synthetic):
    ref_x, _, parts, scale, explanation = synthetic
    png = explanation_png(
        parts[1].reshape(SIDE, SIDE),
        explanation.residual[1].reshape(SIDE, SIDE),
        explanation.gradient[1].reshape(SIDE, SIDE),
        scale.residual,
        scale.gradient,
        references=[
            ("closest good", ref_x[explanation.unit[1]].reshape(SIDE, SIDE)),
            ("not known", None),
        ],
    )
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    from soartlab.plots.heatmaps import MIN_TILE_WIDTH

    up = max(UPSCALE, -(-MIN_TILE_WIDTH // SIDE))  # small parts are enlarged further
    assert 5 * SIDE * up < image.width < 6 * SIDE * up  # five tiles in a row
    assert image.height < 2 * SIDE * up
    # the third tile (pixels not known) is blank grey, the second is the reference in grey
    middle = image.height // 2
    tile = image.width // 5
    assert image.getpixel((2 * tile + tile // 2, middle)) == (235, 235, 235)
    white = colour_values(np.zeros((2, 2)), -1.0, 1.0, "RdBu_r")
    assert (white > 240).all()
    red, blue = colour_values(np.array([[5.0, -5.0]]), -1.0, 1.0, "RdBu_r")[0]
    assert red[0] > red[2] and blue[2] > blue[0]


def test_reference_rows_are_the_training_rows_in_reference_order(tiny_run):
    record = tiny_run.record
    np.testing.assert_array_equal(reference_rows(record), tiny_run.data.train_indices)
    np.testing.assert_array_equal(
        reference_samples(record, tiny_run.dataset), tiny_run.data.x_train
    )
    X, y = to_arrays(tiny_run.dataset)
    other = from_arrays(X[::-1].copy(), y[::-1].copy(), list(tiny_run.data.label_names), (36, 39))
    assert reference_samples(record, other) is None  # not the run's data: no pixels


def test_the_nearest_reference_of_either_kind_is_what_predict_measured(tiny_run):
    from soartlab.workflow import embed_dataset, load_run, predict

    run = load_run(tiny_run.run.path)
    lot = tiny_run.dataset.select(range(0, 3000, 100))
    emb = embed_dataset(run, lot)
    table = predict(run, lot, embeddings=emb)
    X, _ = to_arrays(lot)
    explanation = explain_parts(run.model, run.distance, run.references, run.good_index, X, emb)
    nearest = np.fmin(explanation.nearest.good_distance, explanation.nearest.defect_distance)
    np.testing.assert_allclose(nearest, table["distance"], rtol=1e-5, atol=1e-6)
    assert isinstance(run.distance, SOART3Distance)


def test_small_parts_get_tiles_wide_enough_for_their_words():
    """8×8 parts are enlarged so that no tile is narrower than its title and scale."""
    import io

    from PIL import Image

    from soartlab.plots.heatmaps import MIN_TILE_WIDTH, explanation_png

    tiny = np.zeros((8, 8))
    png = explanation_png(tiny, tiny, tiny, 1.0, 1.0, references=[("nearest good", tiny)])
    width = Image.open(io.BytesIO(png)).width
    assert width >= 4 * MIN_TILE_WIDTH


def test_heatmap_words_in_japanese_or_english_when_no_font_draws_them(monkeypatch):
    """With a system CJK font the titles are the session's words; without one they fall
    back to English (Pillow's built-in font has no Japanese), never boxes or an error."""
    from soartlab.plots import heatmaps
    from soartlab.ui.i18n import translated

    x = np.random.default_rng(0).random((12, 12))

    def ja(text):
        return translated(text, "ja")

    def draw(translate, title):
        return heatmaps.explanation_png(
            x, x - 0.5, x, 0.5, 1.0, references=[(title, x)], translate=translate
        )

    # without a font, a reference title the caller wrote in Japanese is left out
    english = draw(heatmaps.english, "")
    monkeypatch.setattr(heatmaps, "_cjk_font_path", lambda: None)
    assert draw(ja, ja("nearest good d={d}").format(d="0.1")) == english
    monkeypatch.undo()
    if heatmaps._cjk_font_path() is None:
        pytest.skip("no CJK font on this machine (make test installs fonts-noto-cjk)")
    assert draw(ja, ja("nearest good d={d}").format(d="0.1")) != english
