"""Real trainings on the texture set (defects anywhere on a noisy surface): the cnn learns
it clearly better than raw pixels and the majority class, the mlp memorises it and says
so, and a trained cnn run saves, reloads and predicts exactly."""

import numpy as np
import pytest

from soartlab.config import TrainConfig
from soartlab.texture import make_texture_demo
from soartlab.training import Outcome

pytestmark = pytest.mark.slow

# Small enough for a few seconds a run on two cores, large enough to be stable across seeds.
# Not yet calibrated: on the loaded 2 cores, 1000 crops of 32×32 with these settings
# reached validation accuracy 0.29, 0.38, 0.44, 0.50, 0.54, 0.58 in epochs 1-6 (majority
# 0.40, raw kNN 0.32); the time on an idle machine is not measured.
TEXTURE = {"n_samples": 1000, "size": 32}
SETTINGS = {"pairs_per_epoch": 4096, "batch_size": 128, "device": "cpu"}


@pytest.fixture(scope="module")
def texture():
    return make_texture_demo(**TEXTURE, seed=0)


@pytest.fixture(scope="module")
def cnn_run(texture, tmp_path_factory):
    from soartlab.runs import RunStore
    from soartlab.workflow import train_run

    config = TrainConfig(arch="cnn", epochs=8, patience=3, augment="auto", **SETTINGS)
    store = RunStore(tmp_path_factory.mktemp("runs"))
    return train_run(texture, config, store=store, auto_transform=True)


def test_cnn_beats_raw_pixels_and_the_majority_class(cnn_run):
    _, result = cnn_run
    majority = result.metrics["validation"]["majority"]
    bar = max(result.baselines.raw_knn, 0.4, majority)  # 40 % of the parts are good
    assert result.metrics["accuracy"] >= bar + 0.1, (result.metrics, result.baselines)
    assert result.outcome is Outcome.FINISHED
    assert result.augment == "flip,rot90,shift,jitter"  # auto: every augmentation
    assert all(row["val_accuracy"] is not None for row in result.history)
    assert 1 <= result.metrics["kept_epoch"] <= len(result.history)


def test_a_cnn_run_reloads_and_predicts_exactly(cnn_run, texture):
    from soartlab.evaluation import embed
    from soartlab.workflow import embed_dataset, load_run, predict

    run, result = cnn_run
    loaded = load_run(run.path)
    assert loaded.record.model.arch == loaded.record.config.arch == "cnn"
    x = np.asarray(texture.with_format("numpy")["image"][:50], dtype=np.float32)
    # the same weights: equal to float32 rounding (the trained model runs channels_last)
    np.testing.assert_allclose(
        embed_dataset(loaded, texture.select(range(50))), embed(result.model, x), atol=1e-5
    )
    table = predict(loaded, texture.select(range(50)))
    assert set(table["decision"]) <= {"pass", "review", "fail"}
    assert (
        table["decision"].tolist()
        == predict(loaded, texture.select(range(50)))["decision"].tolist()
    )


def test_the_mlp_memorises_the_texture_and_says_what_to_try(texture):
    from soartlab.training import Trainer
    from soartlab.workflow import training_setup

    # 20 epochs: the loss falls from about 0.26 to under 0.01 while validation accuracy
    # stays about 0.2-0.34, below calling every part good (0.40)
    config = TrainConfig(arch="auto", epochs=20, patience=0, **SETTINGS)
    setup = training_setup(texture, config, auto_transform=True)
    assert setup.config.arch == "mlp"  # 24×24 images: auto keeps the article's network
    result = Trainer(setup.config).fit(setup.model, setup.data)
    assert result.outcome is Outcome.MEMORISING, (result.history, result.metrics["validation"])
    assert "--arch cnn" in result.stop_reason
