"""The cnn beside the article's mlp: choosing one, the validation part that picks the epoch
to keep, the memorising outcome, saving and loading a cnn, and the texture set."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from soartlab.architecture import LARGE_IMAGE_PIXELS, propose_architecture, resolve_architecture
from soartlab.checkpoint import load_checkpoint, save_checkpoint
from soartlab.data import Normalization, from_arrays, validation_split
from soartlab.errors import SoartLabError
from soartlab.models import ConvEmbeddingNet, ModelConfig, build_model
from soartlab.prepare import prepare
from soartlab.texture import CLASS_NAMES, make_texture_arrays, make_texture_demo
from soartlab.training import Outcome, Validation, memorising_reason


def prepared(shape, n=40, classes=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, *shape)).astype(np.float32)
    y = np.arange(n) % classes
    return prepare(from_arrays(x, y, [f"c{i}" for i in range(classes)]), 0.25, 0)


# --- choosing the architecture --------------------------------------------------------------


def test_auto_keeps_the_mlp_for_feature_vectors_and_small_images():
    assert propose_architecture(prepared((12,))).arch == "mlp"
    assert propose_architecture(prepared((36, 39))).arch == "mlp"


def test_auto_proposes_the_cnn_for_large_images():
    side = int(LARGE_IMAGE_PIXELS**0.5) + 1
    proposal = propose_architecture(prepared((side, side), n=12))
    assert proposal.arch == "cnn" and str(LARGE_IMAGE_PIXELS) in proposal.reason


def test_cnn_for_feature_vectors_is_refused_naming_the_fix():
    with pytest.raises(SoartLabError, match=r"--arch cnn needs images.*--arch mlp"):
        resolve_architecture("cnn", prepared((12,)))
    assert resolve_architecture("cnn", prepared((8, 8))) == "cnn"


def test_train_cli_refuses_cnn_for_feature_vectors(tmp_path):
    from soartlab.data import write_table

    rng = np.random.default_rng(0)
    path = write_table(tmp_path / "f.csv", rng.random((30, 5)), np.arange(30) % 2, ["a", "b"])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "soartlab",
            "train",
            "--data",
            str(path),
            "--out",
            str(tmp_path / "run"),
            "--arch",
            "cnn",
            "--epochs",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "--arch cnn needs images" in done.stderr


# --- the validation part ------------------------------------------------------------------


def test_validation_split_is_stratified_disjoint_and_seeded():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    fit, val = validation_split(labels, 0.2, seed=3)
    assert len(val) == 20 and len(fit) == 80
    assert not set(fit) & set(val)
    assert np.bincount(labels[val]).tolist() == [10, 6, 4]
    again = validation_split(labels, 0.2, seed=3)
    np.testing.assert_array_equal(again[1], val)
    assert not np.array_equal(validation_split(labels, 0.2, seed=4)[1], val)


def test_no_validation_part_when_it_is_off_or_a_class_has_one_row():
    labels = np.array([0, 0, 0, 1, 1, 1, 2])
    assert validation_split(labels, 0.0) is None
    assert validation_split(labels, 0.3) is None


# --- memorising -----------------------------------------------------------------------------


def validation(raw_knn=0.35, majority=0.4, rows=200):
    return Validation(np.arange(800), np.arange(rows), raw_knn, majority, "good")


def rows(losses, accuracies):
    return [
        {"epoch": i + 1, "loss": loss, "val_accuracy": acc}
        for i, (loss, acc) in enumerate(zip(losses, accuracies, strict=True))
    ]


def test_a_falling_loss_below_the_majority_rate_is_memorising():
    history = rows([0.26, 0.1, 0.02], [0.22, 0.25, 0.24])
    reason = memorising_reason(history, validation(), "mlp", "none")
    assert reason.startswith("memorising: the training loss fell from 0.2600 to 0.0200")
    assert "calling every part 'good' (0.400)" in reason
    assert "--arch cnn" in reason and "augmentation" in reason and "more data" in reason
    # a cnn with every augmentation is told neither again
    cnn = memorising_reason(history, validation(), "cnn", "flip,rot90,shift,jitter")
    assert cnn and "--arch cnn" not in cnn and "--augment" not in cnn


@pytest.mark.parametrize(
    ("losses", "accuracies", "why"),
    [
        ([0.26, 0.1, 0.02], [0.5, 0.7, 0.9], "it learnt"),
        ([0.26, 0.27, 0.28], [0.2, 0.2, 0.2], "the loss did not fall"),
        ([0.26, 0.25, 0.2], [0.2, 0.2, 0.2], "the loss barely fell: not trained enough"),
        ([0.26, 0.1, 0.02], [0.30, 0.34, 0.38], "within the noise of 200 rows"),
        ([0.26], [0.1], "one epoch says nothing"),
    ],
)
def test_not_memorising(losses, accuracies, why):
    assert memorising_reason(rows(losses, accuracies), validation(), "mlp", "none") == "", why


def test_memorising_is_an_outcome_the_record_keeps(tiny_run):
    from dataclasses import replace

    from soartlab.record import RunRecord

    record = replace(tiny_run.record, status=Outcome.MEMORISING, stop_reason="memorising: ...")
    again = RunRecord.from_dict(record.to_dict())
    assert again.status is Outcome.MEMORISING and again.stop_reason == "memorising: ..."


def test_a_record_written_before_architectures_reads_as_the_mlp(tiny_run):
    from soartlab.record import RunRecord

    old = tiny_run.record.to_dict()
    for name in ("arch", "augment", "val_size", "patience", "weight_decay", "channels"):
        old["config"].pop(name)
    old["model"].pop("arch")
    record = RunRecord.from_dict(old)
    assert record.config.arch == record.model.arch == "mlp"
    assert record.config.augment == "none" and record.config.val_size == 0.0


# --- saving and loading a cnn ---------------------------------------------------------------


def test_a_cnn_checkpoint_reloads_as_the_same_function(tmp_path):
    torch.manual_seed(0)
    config = ModelConfig(input_shape=(20, 24), arch="cnn", channels=(4, 8, 8, 16))
    model = build_model(config, Normalization(mean=0.4, std=0.2)).eval()
    paths = save_checkpoint(tmp_path / "run", model, {"label_names": ["a", "b"]})
    images = torch.rand(5, 20, 24)
    for kind in ("safetensors",):
        loaded, meta = load_checkpoint(paths[kind])
        assert isinstance(loaded.embedding_net, ConvEmbeddingNet)
        assert meta["model"]["arch"] == "cnn"
        assert loaded.normalization == model.normalization
        torch.testing.assert_close(loaded.get_embedding(images), model.get_embedding(images))
    # the .pth is the plain state_dict; with the record's model config it loads the same
    loaded, _ = load_checkpoint(
        paths["pth"],
        metadata={"model": config.to_dict(), "normalization": model.normalization.to_dict()},
    )
    torch.testing.assert_close(loaded.get_embedding(images), model.get_embedding(images))


def test_a_cnn_checkpoint_of_other_sizes_is_refused_naming_them(tmp_path):
    from soartlab.errors import CheckpointError

    model = build_model(ModelConfig(input_shape=(16, 16), arch="cnn", channels=(4, 8, 8, 16)))
    paths = save_checkpoint(tmp_path / "run", model, {})
    other = ModelConfig(input_shape=(16, 16), arch="cnn").to_dict()
    with pytest.raises(CheckpointError, match=r"cnn, channels \[16, 32, 64, 128\].*shape mismatch"):
        load_checkpoint(paths["pth"], metadata={"model": other})


# --- the texture set ------------------------------------------------------------------------


def test_texture_set_is_deterministic_and_balanced_like_the_demo():
    x, y = make_texture_arrays(200, seed=1)
    x2, y2 = make_texture_arrays(200, seed=1)
    np.testing.assert_array_equal(x, x2)
    assert x.shape == (200, 32, 32) and x.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 1
    assert np.bincount(y).tolist() == [80, 30, 30, 30, 30]
    assert make_texture_demo(50).features["label"].names == list(CLASS_NAMES)


def test_texture_defects_lie_anywhere():
    """Where each defect differs most from the surface around it varies from crop to crop."""
    x, y = make_texture_arrays(400, seed=0)
    for c in (1, 2):  # particle (bright), pit (dark)
        crops = x[y == c]
        spots = crops.reshape(len(crops), -1)
        spots = spots.argmax(axis=1) if c == 1 else spots.argmin(axis=1)
        rows, cols = np.divmod(spots, 32)
        assert rows.std() > 5 and cols.std() > 5


# --- early stopping -------------------------------------------------------------------------


def small_features(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(size=(n, 6)).astype(np.float32) + y[:, None]
    return prepare(from_arrays(x, y, ["good", "b", "c"]), 0.25, 0)


def test_early_stopping_keeps_the_best_validated_epoch(monkeypatch):
    from soartlab.config import TrainConfig
    from soartlab.training import Trainer, initial_model

    data = small_features()
    config = TrainConfig(
        epochs=10,
        pairs_per_epoch=64,
        batch_size=32,
        hidden=(8, 8, 8),
        embedding_dim=4,
        device="cpu",
        loss="euclidean",
        patience=2,
        val_size=0.2,
    )
    scores = iter([0.5, 0.8, 0.6, 0.7, 0.9, 0.9])  # best in epoch 2, no gain in 3 and 4
    weights = {}

    def validate(self, model, data, validation):
        weights[len(weights) + 1] = {k: v.clone() for k, v in model.state_dict().items()}
        return {"val_accuracy": next(scores), "val_escape_rate": 0.0, "val_overkill_rate": 0.0}

    monkeypatch.setattr(Trainer, "_validate", validate)
    result = Trainer(config).fit(initial_model(config, data), data)
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4]
    assert result.outcome is Outcome.FINISHED
    assert result.metrics["kept_epoch"] == 2
    assert "stopped early after epoch 4" in result.metrics["validation"]["early_stop"]
    for name, tensor in result.model.state_dict().items():
        torch.testing.assert_close(tensor, weights[2][name])
    # pairs come from the fit rows only; the references are the whole training split
    assert result.metrics["validation"]["rows"] == 18
    assert len(result.references[0]) == len(data.y_train) == 90


def test_a_run_that_memorises_is_saved_with_that_outcome(monkeypatch, tmp_path):
    from soartlab.config import TrainConfig
    from soartlab.runs import RunStore
    from soartlab.training import Trainer
    from soartlab.workflow import load_run, train_run

    monkeypatch.setattr(
        Trainer,
        "_validate",
        lambda self, model, data, validation: {
            "val_accuracy": 0.0,
            "val_escape_rate": 1.0,
            "val_overkill_rate": 1.0,
        },
    )
    config = TrainConfig(
        epochs=5,
        pairs_per_epoch=512,
        batch_size=32,
        hidden=(8, 8, 8),
        embedding_dim=4,
        device="cpu",
        patience=0,
        lr=1e-2,
        loss="euclidean",
    )
    rng = np.random.default_rng(0)
    y = np.arange(150) % 3
    x = rng.normal(size=(150, 6)).astype(np.float32) + 2 * y[:, None]
    run, result = train_run(from_arrays(x, y, ["good", "b", "c"]), config, store=RunStore(tmp_path))
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.outcome is Outcome.MEMORISING and result.stopped
    assert result.stop_reason.startswith("memorising:")
    loaded = load_run(run.path)
    assert loaded.record.status is Outcome.MEMORISING
    assert loaded.record.stop_reason == result.stop_reason


def test_without_a_validation_part_the_last_epoch_is_kept():
    import json

    from soartlab.config import TrainConfig
    from soartlab.training import Trainer, initial_model

    data = small_features()
    config = TrainConfig(
        epochs=2,
        pairs_per_epoch=64,
        batch_size=32,
        hidden=(8, 8, 8),
        embedding_dim=4,
        device="cpu",
        loss="euclidean",
        val_size=0.0,
    )
    result = Trainer(config).fit(initial_model(config, data), data)
    assert all("val_accuracy" not in row for row in result.history)
    assert result.metrics["kept_epoch"] == 2 and result.outcome is Outcome.FINISHED
    assert result.metrics["validation"]["rows"] == 0
    json.dumps(result.metrics, allow_nan=False)  # run.json is strict JSON


def test_embedding_batches_of_large_images_fit_the_cnn_s_feature_maps(monkeypatch):
    """At 128×128 the cnn's first feature maps hold 48 floats per pixel: `embed` takes
    batches small enough for `EMBED_ACTIVATION_BYTES`, the mlp the usual ones."""
    from soartlab import evaluation

    sizes = []
    x = np.zeros((300, 128 * 128), dtype=np.float32)
    for arch in ("cnn", "mlp"):
        model = build_model(ModelConfig(input_shape=(128, 128), arch=arch))
        net = model.embedding_net
        monkeypatch.setattr(
            model, "get_embedding", lambda b, net=net: (sizes.append(len(b)), net(b))[1]
        )
        assert evaluation.embed(model, x).shape == (300, model.config.embedding_dim)
        per_row = 4 * 128 * 128 * getattr(net, "activation_ratio", 1)
        assert max(sizes) * per_row <= evaluation.EMBED_ACTIVATION_BYTES
        sizes.clear()
