import threading

import numpy as np
import pytest
import torch

from soartlab import training
from soartlab.data import from_arrays
from soartlab.demo import make_demo
from soartlab.errors import CheckpointError, DataError, SoartLabError
from soartlab.prepare import prepare
from soartlab.training import Outcome, TrainConfig, Trainer, TrainingState, initial_model
from soartlab.transform import GammaTransform

SMALL = dict(epochs=2, pairs_per_epoch=512, batch_size=64, device="cpu")


@pytest.fixture(scope="module")
def demo():
    return prepare(make_demo(n_samples=300, seed=1))


def fit(data, config: TrainConfig, *, callback=None, stop_event=None, warm_start=None, **kwargs):
    trainer = Trainer(config, callback=callback, stop_event=stop_event)
    return trainer.fit(initial_model(config, data, warm_start), data, **kwargs)


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_reports_history_metrics_and_metadata(demo):
    events = []
    result = fit(demo, TrainConfig(**SMALL), callback=events.append)
    assert [r["epoch"] for r in result.history] == [1, 2]
    for row in result.history:
        assert set(row) >= {
            "epoch",
            "loss",
            "val_accuracy",
            "val_escape_rate",
            "val_overkill_rate",
            "seconds",
        }
        assert "test_accuracy" not in row  # the held-out split is scored once, at the end
        assert np.isfinite(row["loss"])
    m = result.metrics
    assert 0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["escape_rate"] <= 1.0
    assert np.array(m["confusion"]).sum() == m["n_samples"] == 60
    kinds = [e.kind for e in events]
    assert kinds.count("epoch") == 2 and kinds[-1] == "end"
    assert events[-1].outcome is Outcome.FINISHED and events[-1].fraction == 1.0
    assert kinds.count("step") == 2 * 8
    assert result.outcome is Outcome.FINISHED and not result.stopped and result.stop_reason == ""
    assert demo.label_names[demo.good_index] == "good"
    assert result.model.config.input_shape == (36, 39)
    emb, labels = result.references
    assert emb.shape == (240, 128) and labels.shape == (240,)


def test_training_is_reproducible_on_cpu(demo):
    a = fit(demo, TrainConfig(**SMALL, seed=3))
    b = fit(demo, TrainConfig(**SMALL, seed=3))
    c = fit(demo, TrainConfig(**SMALL, seed=4))
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key])
    assert not torch.equal(
        a.model.state_dict()["embedding_net.final.weight"],
        c.model.state_dict()["embedding_net.final.weight"],
    )
    assert a.history[-1]["loss"] == b.history[-1]["loss"]


def test_euclidean_baseline_trains(demo):
    config = TrainConfig(**SMALL, loss="euclidean")
    result = fit(demo, config)
    assert training.evaluation_distance(config).name == "euclidean"
    assert np.isfinite(result.history[-1]["loss"])


def test_stop_flag_ends_at_next_step_and_keeps_a_model(demo):
    stop = threading.Event()

    def callback(p):
        if p.kind == "step" and p.step == 3:
            stop.set()

    result = fit(demo, TrainConfig(**SMALL), callback=callback, stop_event=stop)
    assert result.outcome is Outcome.STOPPED
    assert result.stop_reason == "stopped by the user in epoch 1, step 4/8"
    assert len(result.history) == 1
    assert all(torch.isfinite(v).all() for v in result.model.state_dict().values())
    assert "accuracy" in result.metrics


def test_nan_loss_stops_with_epoch_named_and_restores_last_good_state(demo, monkeypatch):
    calls = {"n": 0}
    original = training.ContrastiveLoss.forward

    def forward(self, e1, e2, target):
        calls["n"] += 1
        loss = original(self, e1, e2, target)
        return loss * float("nan") if calls["n"] > 9 else loss  # epoch 1 has 8 steps

    snapshots = []

    def callback(p):
        if p.kind == "epoch":
            snapshots.append(None)

    monkeypatch.setattr(training.ContrastiveLoss, "forward", forward)
    result = fit(demo, TrainConfig(**{**SMALL, "epochs": 3}), callback=callback)
    assert result.outcome is Outcome.NAN_LOSS
    assert "NaN" in result.stop_reason and "epoch 2" in result.stop_reason
    assert all(torch.isfinite(v).all() for v in result.model.state_dict().values())
    assert len(result.history) == 1 and len(snapshots) == 1


def test_an_epoch_without_gradient_stops_not_learning(demo):
    # Every pair on the floor (the digits report's setting): no step has a gradient.
    config = TrainConfig(**{**SMALL, "epochs": 3}, transform=GammaTransform(5.085, -21.26, 0.0))
    before = initial_model(config, demo).state_dict()
    result = fit(demo, config)
    assert result.outcome is Outcome.NOT_LEARNING and result.stopped
    assert "not learning: in epoch 1 no step had a gradient" in result.stop_reason
    assert "loss 0.5000" in result.stop_reason and "Suggest" in result.stop_reason
    assert [row["epoch"] for row in result.history] == [1]
    assert all(torch.equal(before[k], v) for k, v in result.model.state_dict().items())


def test_a_learning_run_is_not_flagged(demo):
    # The article's transform keeps pairs inside the margin on the demo set.
    result = fit(demo, TrainConfig(**SMALL))
    assert result.outcome is Outcome.FINISHED
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_baselines_use_the_held_out_split_and_the_untrained_network(demo):
    config = TrainConfig(**SMALL)
    result = fit(demo, config)
    trainer = Trainer(config)
    model = initial_model(config, demo)
    _, untrained = trainer._evaluate(model, demo)
    assert result.baselines.untrained == untrained["accuracy"]
    assert result.baselines == trainer.baselines(model, demo)
    assert 0 <= result.baselines.raw_knn <= 1


def test_resume_from_training_state_continues_exactly(demo, tmp_path, monkeypatch):
    # one thread count for every fit: the comparison is to float rounding
    torch.set_num_threads(1)
    three = TrainConfig(**{**SMALL, "epochs": 3})
    full = fit(demo, three)
    first = TrainingState(tmp_path / "state.pt", TrainConfig(**SMALL), demo.fingerprint)
    fit(demo, TrainConfig(**SMALL), on_epoch_end=first.save)
    state = TrainingState(tmp_path / "state.pt", three, demo.fingerprint)
    resumed = fit(demo, three, resume=state.load())
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    assert resumed.history[2]["loss"] == pytest.approx(full.history[2]["loss"], rel=1e-5)
    for key, value in full.model.state_dict().items():
        assert torch.allclose(value, resumed.model.state_dict()[key], atol=1e-6)


def test_training_state_refuses_other_data_and_other_settings(demo, tmp_path):
    saved = TrainingState(tmp_path / "state.pt", TrainConfig(**SMALL), demo.fingerprint)
    fit(demo, TrainConfig(**{**SMALL, "epochs": 1}), on_epoch_end=saved.save)
    other_data = TrainingState(tmp_path / "state.pt", TrainConfig(**SMALL), "0" * 64)
    with pytest.raises(CheckpointError, match="trained on other data"):
        other_data.load()
    other_lr = TrainingState(tmp_path / "state.pt", TrainConfig(**SMALL, lr=0.01), demo.fingerprint)
    with pytest.raises(CheckpointError, match="lr: 0.001 there, 0.01 now"):
        other_lr.load()
    assert (
        TrainingState(tmp_path / "none.pt", TrainConfig(**SMALL), demo.fingerprint).load() is None
    )


def test_the_model_normalises_its_own_inputs(demo):
    """Normalisation travels with the network: fitted on the training split only, applied
    inside the model, and absent from the (article-compatible) state_dict."""
    model = initial_model(TrainConfig(**SMALL), demo)
    stats = model.normalization
    assert stats.mean == pytest.approx(float(demo.x_train.astype(np.float64).mean()), rel=1e-6)
    assert set(model.state_dict()) == {
        f"embedding_net.{layer}.{kind}"
        for layer in ("linear1", "linear2", "linear3", "final")
        for kind in ("weight", "bias")
    }
    raw = torch.as_tensor(demo.x_test[:5])
    normalised = (raw - stats.mean) / stats.std
    bare = initial_model(TrainConfig(**SMALL), demo)
    bare.normalization = type(stats)(mean=0.0, std=1.0)
    assert torch.allclose(model.get_embedding(raw), bare.get_embedding(normalised), atol=1e-5)


def test_warm_start_reuses_weights_and_normalisation(demo):
    first = fit(demo, TrainConfig(**SMALL))
    second = fit(demo, TrainConfig(**{**SMALL, "epochs": 1, "lr": 1e-12}), warm_start=first.model)
    assert second.model.normalization == first.model.normalization
    w1 = first.model.state_dict()["embedding_net.linear1.weight"]
    w2 = second.model.state_dict()["embedding_net.linear1.weight"]
    assert torch.allclose(w1, w2, atol=1e-6)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("epochs", 0, "epochs must be an integer"),
        ("batch_size", 1.5, "batch_size"),
        ("lr", float("nan"), "lr must be"),
        ("loss", "triplet", "loss must be one of soart3, euclidean"),
        ("device", "tpu", "device must be one of"),
    ],
)
def test_bad_settings_are_refused(field, value, message):
    with pytest.raises(SoartLabError, match=message):
        TrainConfig(**{field: value}).validate()


def test_one_class_is_refused_when_training_starts():
    X = np.random.default_rng(0).random((10, 4), dtype=np.float32)
    ds = from_arrays(X, np.zeros(10, dtype=np.int64), ["good"])
    with pytest.raises(DataError, match="at least 2 classes"):
        prepare(ds)


def test_pair_seeds_differ_by_epoch_and_rank():
    seeds = {training.pair_seed(0, e, r) for e in range(1, 4) for r in range(3)}
    assert len(seeds) == 9
    assert training.pair_seed(0, 1, 0) == training.pair_seed(0, 1, 0)
