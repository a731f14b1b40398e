import threading

import numpy as np
import pytest
import torch

from soartlab import training
from soartlab.data import from_arrays
from soartlab.demo import make_demo
from soartlab.errors import DataError, SoartLabError
from soartlab.training import TrainConfig, Trainer
from soartlab.transform import GammaTransform

SMALL = dict(epochs=2, pairs_per_epoch=512, batch_size=64, device="cpu")


@pytest.fixture(scope="module")
def demo():
    return make_demo(n_samples=300, seed=1)


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_reports_history_metrics_and_metadata(demo):
    events = []
    result = Trainer(TrainConfig(**SMALL), callback=events.append).fit(demo)
    assert [r["epoch"] for r in result.history] == [1, 2]
    for row in result.history:
        assert set(row) >= {
            "epoch",
            "loss",
            "test_accuracy",
            "escape_rate",
            "overkill_rate",
            "seconds",
        }
        assert np.isfinite(row["loss"])
    m = result.metrics
    assert 0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["escape_rate"] <= 1.0
    assert np.array(m["confusion"]).sum() == m["n_samples"] == 60
    kinds = [e.kind for e in events]
    assert kinds.count("epoch") == 2 and kinds[-1] == "done"
    assert kinds.count("step") == 2 * 8
    meta = result.metadata
    assert meta["label_names"][meta["good_index"]] == "good"
    assert meta["input_shape"] == [36, 39]
    assert meta["transform"] == GammaTransform().to_dict()
    emb, labels = result.references
    assert emb.shape == (240, 128) and labels.shape == (240,)


def test_training_is_reproducible_on_cpu(demo):
    a = Trainer(TrainConfig(**SMALL, seed=3)).fit(demo)
    b = Trainer(TrainConfig(**SMALL, seed=3)).fit(demo)
    c = Trainer(TrainConfig(**SMALL, seed=4)).fit(demo)
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key])
    assert not torch.equal(
        a.model.state_dict()["embedding_net.final.weight"],
        c.model.state_dict()["embedding_net.final.weight"],
    )
    assert a.history[-1]["loss"] == b.history[-1]["loss"]


def test_euclidean_baseline_trains(demo):
    result = Trainer(TrainConfig(**SMALL, loss="euclidean")).fit(demo)
    assert result.metadata["distance"] == {"name": "euclidean"}
    assert np.isfinite(result.history[-1]["loss"])


def test_stop_flag_ends_at_next_step_and_keeps_a_model(demo):
    stop = threading.Event()

    def callback(p):
        if p.kind == "step" and p.step == 3:
            stop.set()

    result = Trainer(TrainConfig(**SMALL), callback=callback, stop_event=stop).fit(demo)
    assert result.stopped and "epoch 1" in result.stop_reason
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
    trainer = Trainer(TrainConfig(**{**SMALL, "epochs": 3}), callback=callback)
    result = trainer.fit(demo)
    assert result.stopped and "NaN" in result.stop_reason and "epoch 2" in result.stop_reason
    assert all(torch.isfinite(v).all() for v in result.model.state_dict().values())
    assert result.metadata["stop_reason"] == result.stop_reason


def test_resume_from_training_state_continues_exactly(demo, tmp_path):
    state = tmp_path / "train_state.pt"
    full = Trainer(TrainConfig(**{**SMALL, "epochs": 3})).fit(demo)
    Trainer(TrainConfig(**{**SMALL, "epochs": 2})).fit(demo, state_path=state)
    resumed = Trainer(TrainConfig(**{**SMALL, "epochs": 3})).fit(
        demo, state_path=state, resume_state=True
    )
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    assert resumed.history[2]["loss"] == pytest.approx(full.history[2]["loss"], rel=1e-5)
    for key, value in full.model.state_dict().items():
        assert torch.allclose(value, resumed.model.state_dict()[key], atol=1e-6)


def test_warm_start_reuses_weights_and_normalisation(demo):
    first = Trainer(TrainConfig(**SMALL)).fit(demo)
    init = {"metadata": first.metadata, "state_dict": first.model.state_dict()}
    second = Trainer(TrainConfig(**{**SMALL, "epochs": 1, "lr": 1e-12})).fit(demo, init_from=init)
    assert second.metadata["normalization"] == first.metadata["normalization"]
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
        Trainer(TrainConfig(**SMALL)).fit(ds)


def test_pair_seeds_differ_by_epoch_and_rank():
    seeds = {training.pair_seed(0, e, r) for e in range(1, 4) for r in range(3)}
    assert len(seeds) == 9
    assert training.pair_seed(0, 1, 0) == training.pair_seed(0, 1, 0)
