import numpy as np
import pandas as pd
import pytest

from soartlab.data import from_arrays, to_arrays
from soartlab.demo import make_demo
from soartlab.errors import CheckpointError, DataError
from soartlab.runs import RunStore
from soartlab.training import TrainConfig
from soartlab.workflow import (
    embed_dataset,
    evaluate_run,
    load_run,
    load_uploaded,
    make_bundle,
    predict,
    train_run,
)

CONFIG = TrainConfig(epochs=1, pairs_per_epoch=512, batch_size=64, device="cpu")


@pytest.fixture(scope="module")
def demo():
    return make_demo(n_samples=300, seed=2)


@pytest.fixture(scope="module")
def run(demo, tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("home"))
    run_dir, result = train_run(demo, CONFIG, store=store, label="first try")
    return store, run_dir, result


def test_train_run_writes_the_run_files(run):
    store, run_dir, result = run
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == ["model.pth", "model.safetensors", "references.safetensors", "run.json"]
    [info] = store.list()
    assert info.label == "first try" and info.path == run_dir


def test_loaded_run_reproduces_training_metrics(run, demo):
    _, run_dir, result = run
    loaded = load_run(run_dir)
    assert loaded.label_names == result.metadata["label_names"]
    emb, labels = loaded.references
    assert np.allclose(emb, result.references[0]) and (labels == result.references[1]).all()
    # Evaluating on the whole demo set includes the training split: at least as good as held-out.
    metrics = evaluate_run(loaded, demo)
    assert metrics["n_samples"] == 300
    assert metrics["accuracy"] >= result.metrics["accuracy"] - 0.05


def test_predict_table_with_and_without_labels(run, demo):
    loaded = load_run(run[1])
    table = predict(loaded, demo)
    assert list(table.columns) == [
        "index",
        "predicted",
        "pass_fail",
        "distance",
        "label",
        "correct",
    ]
    assert set(table["pass_fail"]) <= {"pass", "fail"}
    assert ((table["predicted"] == "good") == (table["pass_fail"] == "pass")).all()
    unlabelled = predict(loaded, demo, labelled=False)
    assert "label" not in unlabelled.columns
    assert (unlabelled["predicted"] == table["predicted"]).all()


def test_bundle_and_pth_uploads_give_the_same_predictions(run, demo, tmp_path):
    _, run_dir, _ = run
    expected = predict(load_run(run_dir), demo)
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(make_bundle(run_dir))
    from_bundle = load_uploaded(bundle)
    pd.testing.assert_frame_equal(predict(from_bundle, demo), expected)
    pth_only = load_uploaded(run_dir / "model.pth", run_json=run_dir / "run.json")
    assert np.allclose(embed_dataset(pth_only, demo), embed_dataset(from_bundle, demo), atol=1e-6)


def test_feature_count_mismatch_names_both_numbers(run):
    loaded = load_run(run[1])
    X = np.zeros((4, 100), dtype=np.float32)
    wrong = from_arrays(X, np.array([0, 1, 0, 1]), ["good", "scratch"])
    with pytest.raises(DataError, match="100 features but the model expects 1404"):
        predict(loaded, wrong)


def test_unknown_label_in_new_lot_is_named(run, demo):
    loaded = load_run(run[1])
    X, _ = to_arrays(demo)
    other = from_arrays(X[:4], np.array([0, 1, 0, 1]), ["good", "wobble"])
    with pytest.raises(DataError, match="wobble"):
        evaluate_run(loaded, other)


def test_bad_uploads_are_refused(tmp_path, run):
    fake = tmp_path / "bundle.zip"
    fake.write_bytes(b"not a zip at all")
    with pytest.raises(CheckpointError, match="not a valid zip"):
        load_uploaded(fake)
    import zipfile

    partial = tmp_path / "partial.zip"
    with zipfile.ZipFile(partial, "w") as z:
        z.writestr("run.json", "{}")
    with pytest.raises(CheckpointError, match="model.safetensors missing"):
        load_uploaded(partial)
    with pytest.raises(CheckpointError, match="no run.json"):
        load_run(tmp_path)


def test_unlabelled_lot_gets_predictions_without_metrics(run, demo, tmp_path):
    from soartlab.data import is_labelled, load_dataset

    X, _ = to_arrays(demo)
    table = pd.DataFrame(X[:20], columns=[f"f{i}" for i in range(X.shape[1])])
    table.to_csv(tmp_path / "lot.csv", index=False)
    with pytest.raises(DataError, match="no 'label' column"):
        load_dataset(tmp_path / "lot.csv")
    lot = load_dataset(tmp_path / "lot.csv", require_labels=False)
    assert not is_labelled(lot) and is_labelled(demo)
    loaded = load_run(run[1])
    predicted = predict(loaded, lot)
    assert list(predicted.columns) == ["index", "predicted", "pass_fail", "distance"]
    assert (predicted["predicted"].values == predict(loaded, demo)["predicted"].values[:20]).all()
    with pytest.raises(DataError, match="no labels"):
        evaluate_run(loaded, lot)


def test_predict_reuses_given_embeddings(run, demo):
    loaded = load_run(run[1])
    emb = embed_dataset(loaded, demo)
    pd.testing.assert_frame_equal(predict(loaded, demo, embeddings=emb), predict(loaded, demo))


def test_saved_run_reproduces_held_out_metrics_exactly(run, demo):
    from soartlab.data import split

    _, run_dir, result = run
    loaded = load_run(run_dir)
    # the distance used after loading is the one training evaluated with: untransformed
    assert loaded.distance.params() == {"p_v": 4.0, "p_m": 1.0, "eps": 1e-4}
    _, test = split(demo, test_size=CONFIG.test_size, seed=CONFIG.seed)
    metrics = evaluate_run(loaded, test)
    assert metrics["accuracy"] == result.metrics["accuracy"]
    assert metrics["confusion"] == result.metrics["confusion"]
