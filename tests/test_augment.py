"""Augmentation of training batches, its setting, and the Train page's preview grid."""

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from soartlab.augment import (
    Augmentation,
    augmented_examples,
    preview_examples,
    resolve_augmentation,
)
from soartlab.errors import SoartLabError
from soartlab.plots import augmentation_grid


def batch(n=6, h=12, w=12, seed=0):
    return torch.rand(n, h, w, generator=torch.Generator().manual_seed(seed))


def draw(augmentation, x, seed=1):
    return augmentation(x, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ["flip", "rot90"])
def test_flips_and_turns_only_move_pixels(name):
    x = batch()
    out = draw(Augmentation(**{name: True}), x)
    assert out.shape == x.shape
    # each image keeps its own pixel values, only their places change
    torch.testing.assert_close(out.flatten(1).sort().values, x.flatten(1).sort().values)
    assert not torch.equal(out, x), "a fair coin per image: some image must change"


def test_quarter_turns_of_a_square_image_are_its_rotations():
    x = batch(n=32)
    out = draw(Augmentation(rot90=True), x)
    for image, turned in zip(x, out, strict=True):
        assert any(torch.equal(turned, torch.rot90(image, k, (0, 1))) for k in range(4))
    turns = {
        next(k for k in range(4) if torch.equal(t, torch.rot90(i, k, (0, 1))))
        for i, t in zip(x, out, strict=True)
    }
    assert len(turns) > 2


def test_a_non_square_image_is_only_turned_half_way():
    x = batch(n=16, h=8, w=11)
    out = draw(Augmentation(rot90=True), x)
    assert out.shape == x.shape
    for image, turned in zip(x, out, strict=True):
        assert torch.equal(turned, image) or torch.equal(turned, torch.rot90(image, 2, (0, 1)))


def test_a_shift_moves_a_spot_by_a_few_pixels_at_most():
    x = torch.zeros(40, 16, 16)
    x[:, 8, 8] = 1.0
    out = draw(Augmentation(shift=True), x)
    where = [divmod(int(image.argmax()), 16) for image in out]
    moves = {(r - 8, c - 8) for r, c in where}
    assert len(moves) > 5  # each image its own offset
    assert all(abs(dr) <= 2 and abs(dc) <= 2 for dr, dc in moves)  # 16 / 8 = 2 pixels
    assert torch.allclose(out.sum(dim=(1, 2)), torch.ones(40))


def test_jitter_changes_brightness_and_contrast_per_image():
    x = batch()
    out = draw(Augmentation(jitter=True), x)
    shift = (out.mean(dim=(1, 2)) - x.mean(dim=(1, 2))).abs()
    assert (shift > 0).all() and (shift < 0.2 * x.std() + 1e-6).all()
    ratio = out.std(dim=(1, 2)) / x.std(dim=(1, 2))
    assert ((ratio > 0.79) & (ratio < 1.21)).all() and ratio.std() > 0


def test_the_same_seed_gives_the_same_draws_and_none_is_the_identity():
    x = batch()
    every = Augmentation.all()
    assert torch.equal(draw(every, x, seed=5), draw(every, x, seed=5))
    assert not torch.equal(draw(every, x, seed=5), draw(every, x, seed=6))
    assert draw(Augmentation(), x) is x


def test_auto_is_every_augmentation_for_the_cnn_and_none_for_the_mlp():
    assert resolve_augmentation("auto", "cnn", (32, 32)) == Augmentation.all()
    assert not resolve_augmentation("auto", "mlp", (36, 39)).active
    assert resolve_augmentation("shift,flip", "mlp", (36, 39)).to_spec() == "flip,shift"
    assert not resolve_augmentation("auto", "mlp", (30,)).active


def test_augmentation_of_feature_vectors_is_refused():
    with pytest.raises(SoartLabError, match=r"augment 'flip' needs images.*--augment none"):
        resolve_augmentation("flip", "mlp", (30,))


def test_preview_shows_one_sample_per_class_and_its_draws(demo_set):
    originals, drawn, names, chosen = preview_examples(demo_set, "auto", "auto", variants=3)
    assert originals.shape == (4, 36, 39) and drawn.shape == (4, 3, 36, 39)
    assert names == ["good", "burr", "crack", "dent"]
    assert chosen == Augmentation.all()
    again = augmented_examples(originals, chosen, variants=3, seed=0)
    np.testing.assert_array_equal(again, drawn)


def test_augmentation_grid_puts_each_sample_beside_its_draws():
    originals = np.random.default_rng(0).random((2, 9, 7)).astype(np.float32)
    variants = np.stack([originals, originals[:, ::-1]], axis=1)
    fig = augmentation_grid(originals, variants, ["good", "pit"])
    assert isinstance(fig, go.Figure)
    heatmaps = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert len(heatmaps) == 2 * 3
    np.testing.assert_array_equal(heatmaps[3].z, originals[1])  # row 2 starts with sample 2
    titles = [a.text for a in fig.layout.annotations]
    assert titles[:3] == ["good", "augmented 1", "augmented 2"] and "pit" in titles


def test_augmentation_grid_refuses_mismatched_shapes():
    with pytest.raises(SoartLabError, match="same n"):
        augmentation_grid(np.zeros((2, 4, 4)), np.zeros((3, 2, 4, 4)))
