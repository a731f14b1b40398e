"""soartlab.demo: a deterministic synthetic inspection set that raw pixels do not solve."""

import numpy as np
import pytest
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

from soartlab import data, demo
from soartlab.errors import DataError


@pytest.fixture(scope="module")
def full_demo():
    return demo.make_arrays(3000, seed=0)


def test_make_demo_dataset_layout():
    ds = demo.make_demo(n_samples=160, seed=0)
    assert len(ds) == 160
    assert data.input_shape(ds) == (36, 39)
    assert data.label_names(ds) == list(demo.CLASS_NAMES)
    assert data.good_index(ds) == 0
    X, y = data.to_arrays(ds)
    assert X.shape == (160, 36 * 39) and X.dtype == np.float32
    assert X.min() >= 0.0 and X.max() <= 1.0
    assert data.check_trainable(ds) == []


def test_classes_and_counts(full_demo):
    _, y = full_demo
    assert len(demo.CLASS_NAMES) >= 7 and demo.CLASS_NAMES[0] == "good"
    for defect in ("scratch", "dent", "crack", "stain", "burr", "missing_hole"):
        assert defect in demo.CLASS_NAMES
    counts = np.bincount(y, minlength=len(demo.CLASS_NAMES))
    np.testing.assert_array_equal(counts, demo.class_counts(3000))
    assert counts.sum() == 3000 and counts[0] == 1200
    assert counts[1:].max() - counts[1:].min() <= 1


def test_deterministic_per_seed():
    a_images, a_labels = demo.make_arrays(200, seed=3)
    b_images, b_labels = demo.make_arrays(200, seed=3)
    np.testing.assert_array_equal(a_images, b_images)
    np.testing.assert_array_equal(a_labels, b_labels)
    c_images, _ = demo.make_arrays(200, seed=4)
    assert not np.array_equal(a_images, c_images)


def test_class_order_matches_what_loading_a_written_demo_gives():
    assert list(demo.CLASS_NAMES) == data._encode_labels(np.array(demo.CLASS_NAMES), None, "")[1]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_demo_loads_back_as_images(tmp_path, suffix):
    path = demo.write_demo(tmp_path / f"demo{suffix}", n_samples=80, seed=1)
    ds = data.load_dataset(path)
    assert data.input_shape(ds) == (36, 39)
    assert data.label_names(ds) == list(demo.CLASS_NAMES)
    images, labels = demo.make_arrays(80, seed=1)
    X, y = data.to_arrays(ds)
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_allclose(X, images.reshape(80, -1), atol=5e-5 if suffix == ".csv" else 0)


def test_bad_arguments():
    with pytest.raises(DataError, match="n_samples"):
        demo.make_arrays(3)
    with pytest.raises(DataError, match="n_samples"):
        demo.make_arrays(10**7)
    with pytest.raises(DataError, match=r"\.csv or \.parquet"):
        demo.write_demo("demo.json", n_samples=10)


def test_raw_pixel_nearest_neighbour_is_weak(full_demo):
    """Training must matter: 1-NN on normalised raw pixels stays well below 0.90."""
    images, labels = full_demo
    X = images.reshape(len(images), -1)
    train, test = train_test_split(
        np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=0
    )
    norm = data.Normalization.fit(X[train])
    knn = KNeighborsClassifier(n_neighbors=1).fit(norm.apply(X[train]), labels[train])
    accuracy = (knn.predict(norm.apply(X[test])) == labels[test]).mean()
    assert accuracy < 0.85
    assert accuracy > 1 / len(demo.CLASS_NAMES)  # but the classes are not noise either
