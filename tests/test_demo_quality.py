"""The demo set's promise: training matters (raw-pixel kNN is far behind) and the article's
network learns it (SOART3-contrastive training reaches 0.90 held-out accuracy)."""

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from soartlab.demo import make_demo
from soartlab.prepare import prepare
from soartlab.training import TrainConfig, Trainer, initial_model


@pytest.mark.slow
def test_soart3_training_beats_raw_pixel_knn_on_the_demo_set():
    # Three epochs of the default 20,000 pairs. With 10,000 pairs accuracy after three
    # epochs depends on the split by several points (0.888 on this split, 0.928 on the
    # one drawn before the split moved to data.split_indices): too close to 0.90 to test.
    config = TrainConfig(epochs=3, pairs_per_epoch=20000, device="cpu")
    data = prepare(make_demo(), config.test_size, config.seed)
    model = initial_model(config, data)
    norm = model.normalization  # the same split and normalisation for the raw baseline
    result = Trainer(config).fit(model, data)

    knn = KNeighborsClassifier(n_neighbors=1).fit(norm.apply(data.x_train), data.y_train)
    raw_accuracy = float(np.mean(knn.predict(norm.apply(data.x_test)) == data.y_test))

    assert result.metrics["accuracy"] >= 0.90
    assert raw_accuracy <= result.metrics["accuracy"] - 0.10
