"""soartlab.tuning: the distances the loss sees, its view of a setting, Suggest, the
pre-training check and Preview."""

import threading
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from soartlab import tuning
from soartlab.demo import make_demo
from soartlab.errors import SoartLabError
from soartlab.losses import ContrastiveLoss
from soartlab.metric import soart3
from soartlab.prepare import prepare
from soartlab.training import Outcome, TrainConfig, initial_model
from soartlab.transform import GammaTransform

# The setting the digits report trained with: every pair on the floor.
DIGITS_REPORT = GammaTransform(scale=5.085, offset=-21.26, floor=0.0)
SMALL = TrainConfig(
    epochs=1,
    pairs_per_epoch=256,
    batch_size=32,
    hidden=(32, 32, 32),
    embedding_dim=16,
    device="cpu",
)


@pytest.fixture(scope="module")
def small():
    data = prepare(make_demo(n_samples=300, seed=1))
    return data, initial_model(SMALL, data)


class FirstColumn:
    """A distance that returns given values: row i's first entry."""

    def pairwise(self, a, b):
        return a[:, 0]


def test_loss_view_counts_pulled_and_pushed_pairs():
    transform = GammaTransform(scale=1.0, offset=0.0, floor=0.0)
    matched = np.array([0.0, 0.0, 0.5, 2.0])  # two on the floor
    unmatched = np.array([0.0, 0.5, 0.9, 1.0, 3.0])  # floor, inside, inside, at margin, beyond
    view = tuning.loss_view(matched, unmatched, transform, margin=1.0)
    assert view.pulled == 0.5
    assert view.pushed == pytest.approx(2 / 5)
    assert (view.n_matched, view.n_unmatched) == (4, 5)
    assert view.learns and view.problem == ""


def test_loss_view_loss_is_the_contrastive_loss():
    rng = np.random.default_rng(0)
    transform = GammaTransform(scale=2.0, offset=-1.0, floor=0.1)
    matched, unmatched = rng.gamma(2, size=300), rng.gamma(3, size=200)
    view = tuning.loss_view(matched, unmatched, transform, margin=1.5)
    d = torch.tensor(np.concatenate([matched, unmatched]))[:, None]
    target = torch.cat([torch.ones(300), torch.zeros(200)])
    expected = ContrastiveLoss(FirstColumn(), margin=1.5, transform=transform)(d, d, target)
    assert view.loss == pytest.approx(float(expected))


def test_loss_view_names_the_numbers_when_nothing_learns():
    rng = np.random.default_rng(0)
    matched, unmatched = rng.uniform(0.6, 1.5, 1000), rng.uniform(0.7, 1.5, 1000)
    view = tuning.loss_view(matched, unmatched, DIGITS_REPORT, margin=1.0)
    assert (view.pulled, view.pushed, view.loss) == (0.0, 0.0, 0.5)
    assert not view.learns
    assert "scale 5.085, offset -21.26, floor 0" in view.problem
    assert "no matched pairs" in view.problem and "Suggest" in view.problem


def test_loss_view_needs_both_shares_with_a_transform_and_either_without():
    transform = GammaTransform(scale=1.0, offset=0.0, floor=0.0)
    matched = np.array([0.5] * 10)  # all pulled
    unmatched = np.array([5.0] * 10)  # all beyond the margin
    assert not tuning.loss_view(matched, unmatched, transform, 1.0).learns
    raw = tuning.loss_view(matched, unmatched, None, 1.0)
    assert raw.learns  # pulling the matched pairs in moves the raw distance as a whole
    nothing = tuning.loss_view(np.zeros(10), unmatched, None, 1.0)
    assert not nothing.learns and "raw distance with margin 1" in nothing.problem


def test_loss_view_refuses_bad_input():
    with pytest.raises(SoartLabError, match="matched is empty"):
        tuning.loss_view([], [1.0], None, 1.0)
    with pytest.raises(SoartLabError, match="NaN"):
        tuning.loss_view([np.nan], [1.0], None, 1.0)
    with pytest.raises(SoartLabError, match="margin"):
        tuning.loss_view([1.0], [1.0], GammaTransform(floor=2.0), 1.0)


def test_suggest_maps_zero_to_the_floor_and_twice_the_unmatched_quantile_to_the_margin():
    rng = np.random.default_rng(1)
    matched, unmatched = rng.gamma(4, 0.25, 5000), rng.gamma(8, 0.25, 5000)
    t = tuning.suggest_transform_for_loss(matched, unmatched, margin=2.0, floor=0.5)
    assert t.floor == 0.5
    assert t.offset == pytest.approx(0.5)  # gamma 0 on the floor
    assert t.scale * 2 * np.quantile(unmatched, 0.9) + t.offset == pytest.approx(2.0)
    view = tuning.loss_view(matched, unmatched, t, 2.0)
    assert view.pulled == 1.0 and view.pushed >= 0.9


def test_suggest_falls_back_inside_floor_and_margin():
    same = np.full(50, 0.3)
    t = tuning.suggest_transform_for_loss(same, same)  # a spread of 0
    assert t(0.3) == pytest.approx(0.5)
    crossed = tuning.suggest_transform_for_loss(np.array([5.0, 6.0]), np.array([1.0, 2.0]))
    view = tuning.loss_view([5.0, 6.0], [1.0, 2.0], crossed, 1.0)
    assert view.pulled == view.pushed == 1.0


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    matched=st.lists(st.floats(0, 50, allow_nan=False), min_size=1, max_size=60),
    unmatched=st.lists(st.floats(0, 50, allow_nan=False), min_size=1, max_size=60),
    shift=st.floats(-20, 20),
    margin=st.floats(0.01, 100),
    floor_below=st.floats(0.01, 50),
)
def test_suggested_transform_always_learns(matched, unmatched, shift, margin, floor_below):
    matched = np.array(matched) + shift
    floor = margin - floor_below
    t = tuning.suggest_transform_for_loss(matched, unmatched, margin=margin, floor=floor)
    assert tuning.loss_view(matched, unmatched, t, margin).learns
    # and a run may be trained with it
    replace(SMALL, margin=margin, transform=t).validate()


def test_pair_gammas_on_embeddings_and_raw(small):
    data, model = small
    pairs = tuning.pair_gammas(data.x_train, data.y_train, model=model, n_pairs=200, seed=0)
    assert pairs.matched.shape == (100,) and pairs.unmatched.shape == (100,)
    assert pairs.source == "network"
    raw = tuning.pair_gammas(data.x_train, data.y_train, model=None, n_pairs=200, seed=0)
    assert raw.source == "raw"
    assert not np.allclose(np.sort(raw.matched), np.sort(pairs.matched))
    # the loss's distance: gamma between the embeddings, first row as the signal
    from soartlab.data import sample_pairs
    from soartlab.evaluation import embed

    i, j, target = sample_pairs(data.y_train, 200, seed=0)
    emb = embed(model, data.x_train)
    _, _, gamma = soart3(emb[i], emb[j])
    np.testing.assert_allclose(pairs.matched, gamma[target > 0.5], rtol=1e-5)


def test_check_learnable_refuses_the_digits_report_setting(small):
    data, model = small
    config = replace(SMALL, transform=DIGITS_REPORT)
    with pytest.raises(SoartLabError, match=r"scale 5\.085, offset -21\.26.*Suggest"):
        tuning.check_learnable(config, data, model, n_pairs=400)
    pairs = tuning.training_pairs(config, data.x_train, data.y_train, model, 400)
    suggested = tuning.suggest_transform_for_loss(pairs.matched, pairs.unmatched)
    view = tuning.check_learnable(replace(config, transform=suggested), data, model, 400)
    assert view.learns


def test_check_learnable_euclidean_refuses_only_when_no_pair_moves(small):
    data, model = small
    assert tuning.check_learnable(replace(SMALL, loss="euclidean"), data, model, 200).learns


def test_preview_trains_a_copy_and_reports_separation(small):
    data, model = small
    before = {k: v.clone() for k, v in model.state_dict().items()}
    steps = []
    result = tuning.preview(
        model, data, SMALL, steps=20, max_samples=100, pairs=200, callback=steps.append
    )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert result.steps == 20 == len(steps) and not result.cancelled
    assert result.outcome is Outcome.FINISHED
    assert np.isfinite([result.first_loss, result.last_loss]).all()
    assert 0 <= result.report.roc_auc <= 1 and result.report.n_matched == 100
    assert result.before.matched.shape == result.after.matched.shape
    assert not np.allclose(result.before.matched, result.after.matched)


def test_preview_cancels_promptly(small):
    data, model = small
    stop = threading.Event()

    def stop_after_three(progress):
        if progress.step == 3:
            stop.set()

    result = tuning.preview(
        model, data, SMALL, steps=500, pairs=200, stop_event=stop, callback=stop_after_three
    )
    assert result.cancelled and result.steps == 3
    assert result.outcome is Outcome.STOPPED


def test_stratified_subsample_keeps_every_class():
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    rows = tuning.stratified_subsample(labels, 100, seed=0)
    counts = np.bincount(labels[rows])
    assert counts.tolist() == [90, 9, 2]
    assert (np.diff(rows) > 0).all()
    assert tuning.stratified_subsample(labels[:50], 100, seed=0).tolist() == list(range(50))


def test_the_default_transform_is_the_articles_when_it_learns_else_suggests():
    from soartlab.transform import ARTICLE_TRANSFORM
    from soartlab.tuning import default_transform, loss_view

    rng = np.random.default_rng(0)
    # gammas spread over the article's window (0.5 .. 2.5): its values learn
    matched, unmatched = rng.uniform(0.4, 1.5, 500), rng.uniform(1.0, 3.0, 500)
    transform, suggested = default_transform(matched, unmatched, margin=1.0)
    assert transform == ARTICLE_TRANSFORM and not suggested
    # every gamma below 0.5: the article's values put every pair on the floor
    matched, unmatched = rng.uniform(0.0, 0.2, 500), rng.uniform(0.1, 0.45, 500)
    assert not loss_view(matched, unmatched, ARTICLE_TRANSFORM, 1.0).learns
    transform, suggested = default_transform(matched, unmatched, margin=1.0)
    assert suggested and loss_view(matched, unmatched, transform, 1.0).learns
