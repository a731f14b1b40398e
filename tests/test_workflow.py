import numpy as np
import pandas as pd
import pytest

from soartlab.data import from_arrays, to_arrays
from soartlab.errors import CheckpointError, DataError
from soartlab.runs import Run
from soartlab.workflow import (
    embed_dataset,
    evaluate_run,
    held_out_split,
    load_run,
    load_uploaded,
    predict,
)


@pytest.fixture(scope="module")
def demo(tiny_run):
    return tiny_run.dataset


@pytest.fixture(scope="module")
def run(tiny_run):
    return tiny_run.store, tiny_run.run.path, tiny_run.result


def test_train_run_writes_the_run_files(run):
    store, run_dir, result = run
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == ["model.pth", "model.safetensors", "references.safetensors", "run.json"]
    [info] = store.list()
    assert info.label == "tiny run" and info.path == run_dir and info.status == "finished"


def test_loaded_run_reproduces_training_metrics(run, demo):
    _, run_dir, result = run
    loaded = load_run(run_dir)
    assert loaded.label_names == ["good", *sorted(set(loaded.label_names) - {"good"})]
    assert tuple(loaded.label_names) == loaded.record.label_names
    emb, labels = loaded.references
    assert np.allclose(emb, result.references[0]) and (labels == result.references[1]).all()
    # Evaluating on the whole demo set includes the training split: at least as good as held-out.
    metrics = evaluate_run(loaded, demo)
    assert metrics["n_samples"] == 3000
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
    # the article's classes take the .pth; SOART Lab takes it with its record
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(Run(run_dir).bundle())
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
    with zipfile.ZipFile(partial, "w") as z:
        z.writestr("run.json", "[" * 100_000)
        z.writestr("model.safetensors", b"")
    with pytest.raises(CheckpointError, match="nested too deeply"):
        load_uploaded(partial)


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
    _, run_dir, result = run
    loaded = load_run(run_dir)
    # the distance used after loading is the one training evaluated with: untransformed
    assert loaded.distance.params() == {"p_v": 4.0, "p_m": 1.0, "eps": 1e-4}
    metrics = evaluate_run(loaded, held_out_split(loaded, demo))
    assert metrics["accuracy"] == result.metrics["accuracy"]
    assert metrics["confusion"] == result.metrics["confusion"]


def test_held_out_rows_are_the_ones_never_trained_on(tiny_run):
    record = tiny_run.record
    held_out = set(record.data.test_indices)
    assert held_out == set(tiny_run.data.test_indices.tolist())
    assert held_out.isdisjoint(tiny_run.data.train_indices.tolist())
    assert len(held_out) == 600 and record.data.n_samples == 3000


def test_held_out_figures_are_refused_on_other_data(run, demo):
    loaded = load_run(run[1])
    X, y = to_arrays(demo)
    shuffled = from_arrays(X[::-1].copy(), y[::-1].copy(), loaded.label_names, (36, 39))
    with pytest.raises(DataError, match="not the data run 'tiny run' was trained on"):
        held_out_split(loaded, shuffled)
    fewer = demo.select(range(2000))
    with pytest.raises(DataError, match=r"\(2000 samples\).*\(3000 samples\)"):
        held_out_split(loaded, fewer)


def test_comparison_uses_rows_held_out_by_both_runs(run, demo):
    from dataclasses import replace

    from soartlab.record import DataInfo

    loaded = load_run(run[1])
    info = loaded.record.data
    other = replace(
        loaded,
        record=replace(
            loaded.record,
            data=DataInfo(
                info.fingerprint,
                info.n_samples,
                info.test_indices[: len(info.test_indices) // 2] + (0,),
            ),
        ),
    )
    both = held_out_split([loaded, other], demo)
    assert len(both) == len(set(info.test_indices) & set(other.record.data.test_indices))


def test_train_run_refuses_a_setting_that_teaches_nothing(tiny_run, tmp_path):
    from dataclasses import replace

    from soartlab.errors import SoartLabError
    from soartlab.runs import RunStore
    from soartlab.transform import GammaTransform
    from soartlab.workflow import learnability, train_run

    config = replace(tiny_run.config, transform=GammaTransform(5.085, -21.26, 0.0))
    with pytest.raises(SoartLabError, match=r"scale 5\.085, offset -21\.26.*Suggest"):
        learnability(tiny_run.dataset, config)
    store = RunStore(tmp_path / "runs")
    with pytest.raises(SoartLabError, match=r"scale 5\.085"):
        train_run(tiny_run.dataset, config, store=store)
    assert store.list() == []
    # With no transform chosen, the run trains with Suggest's, which learns.
    assert learnability(tiny_run.dataset, config, auto_transform=True).learns


def test_training_setup_suggests_on_the_network_it_will_train(tiny_run):
    from soartlab.tuning import suggest_transform_for_loss
    from soartlab.workflow import training_setup

    setup = training_setup(tiny_run.dataset, tiny_run.config, auto_transform=True)
    assert setup.suggested and setup.view.learns
    expected = suggest_transform_for_loss(setup.pairs.matched, setup.pairs.unmatched)
    assert setup.config.transform == expected
    again = training_setup(tiny_run.dataset, tiny_run.config, resume_from=tiny_run.run.path)
    assert not again.suggested and again.config.transform == tiny_run.config.transform
    assert not np.allclose(again.pairs.matched, setup.pairs.matched)  # the trained model's
