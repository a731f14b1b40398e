import re
from dataclasses import replace

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
    assert names == [
        "calibration.safetensors",
        "model.pth",
        "model.safetensors",
        "references.safetensors",
        "run.json",
    ]
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
        "decision",
        "defect_type",
        "pass_fail",
        "distance",
        "nearest_index",
        "nearest_class",
        "good_distance",
        "defect_distance",
        "reason",
        "label",
        "correct",
    ]
    # the run's operating point decides, on the distance to the nearest good reference
    point = loaded.operating_point()
    decision, score = table["decision"], table["good_distance"]
    assert set(decision) == {"pass", "review", "fail"}
    assert (score[decision == "pass"] <= point.pass_below).all()
    failed = decision == "fail"
    unknown = table["defect_type"] == "unknown"
    assert (score[failed & ~unknown] > point.fail_above).all()
    assert (table.loc[failed, "defect_type"] != "").all() and (table["defect_type"] != "good").all()
    assert (table["pass_fail"] == np.where(decision == "pass", "pass", "fail")).all()
    plain = (decision == "pass") | (failed & ~unknown)
    assert ((table["reason"] == "") == plain).all()
    assert (table["distance"] <= np.fmin(score, table["defect_distance"]) + 1e-6).all()
    labels = loaded.references[1]
    names = np.array(loaded.label_names)
    assert (table["nearest_class"] == names[labels[table["nearest_index"]]]).all()
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
    assert list(predicted.columns) == [
        "index",
        "predicted",
        "decision",
        "defect_type",
        "pass_fail",
        "distance",
        "nearest_index",
        "nearest_class",
        "good_distance",
        "defect_distance",
        "reason",
    ]
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


# --- parts that cannot be scored honestly -----------------------------------------------


def lot_with_extremes(demo):
    """Eight demo parts; part 0 holds float32's largest value everywhere (finite in the
    file, inf once normalised), the others are ordinary."""
    X, y = to_arrays(demo)
    X = X[:8].copy()
    X[0] = np.finfo(np.float32).max
    return from_arrays(X, y[:8], list(demo.features["label"].names), (36, 39))


def test_a_part_that_overflows_in_the_model_is_review_never_pass(run, demo):
    from soartlab.workflow import NOT_FINITE_EMBEDDING, NOT_FINITE_INPUT

    loaded = load_run(run[1])
    lot = lot_with_extremes(demo)
    table = predict(loaded, lot)
    assert table.loc[0, "decision"] == "review" and table.loc[0, "pass_fail"] == "fail"
    assert table.loc[0, "reason"] == NOT_FINITE_INPUT
    assert table.loc[0, "predicted"] == "" and np.isnan(table.loc[0, "distance"])
    assert not table.loc[0, "correct"]
    ordinary = predict(loaded, lot.select(range(1, 8)))
    assert (table["decision"][1:].values == ordinary["decision"].values).all()
    assert not ({NOT_FINITE_INPUT, NOT_FINITE_EMBEDDING} & set(ordinary["reason"]))
    # an embedding that is not finite (given by the caller, as the pages do)
    embeddings = embed_dataset(loaded, lot)
    embeddings[1, 3] = np.nan
    table = predict(loaded, lot, embeddings=embeddings)
    assert table.loc[1, "decision"] == "review" and table.loc[1, "reason"] == NOT_FINITE_EMBEDDING


def test_a_non_finite_distance_is_never_pass(run, demo):
    from soartlab.workflow import NOT_FINITE_DISTANCE

    loaded = load_run(run[1])
    lot = lot_with_extremes(demo).select(range(1, 8))
    embeddings = embed_dataset(loaded, lot)
    embeddings[2] = 3e38  # finite, but SOART3 gamma against any reference overflows
    table = predict(loaded, lot, embeddings=embeddings)
    assert table.loc[2, "decision"] == "review" and table.loc[2, "reason"] == NOT_FINITE_DISTANCE
    assert table.loc[2, "pass_fail"] == "fail"
    assert NOT_FINITE_DISTANCE not in set(table.drop(index=2)["reason"])


def test_evaluate_counts_an_unscorable_part_as_judged_defective(run, demo):
    loaded = load_run(run[1])
    lot = lot_with_extremes(demo)
    metrics = evaluate_run(loaded, lot)
    table = predict(loaded, lot)
    assert metrics["accuracy"] == table["correct"].mean()
    good = table["label"] == loaded.label_names[loaded.good_index]
    judged_good = table["predicted"] == loaded.label_names[loaded.good_index]
    assert metrics["escape_rate"] == (~good & judged_good).sum() / (~good).sum()
    assert table.loc[0, "decision"] == "review"  # the overflowing part
    decided = metrics["decision"]
    assert decided["escapes"] == (~good & (table["decision"] == "pass")).sum()
    assert decided["reviews"] == (table["decision"] == "review").sum()


# --- a run folder is one unit -----------------------------------------------------------


def other_run_files(tiny_run, record):
    """Weights of another model (the tiny model, shifted) with ``record`` in their header,
    and its reference file: what a re-train into the same folder writes."""
    import copy

    import torch

    from soartlab.checkpoint import checkpoint_bytes

    model = copy.deepcopy(tiny_run.result.model)
    with torch.no_grad():
        model.embedding_net.final.bias.add_(1.0)
    return (
        lambda final: checkpoint_bytes(model, final.to_dict()),
        tiny_run.run.references_path.read_bytes(),
    )


def test_a_crash_while_rewriting_a_run_leaves_the_old_run_whole(
    tiny_run, tiny_run_copy, demo, monkeypatch
):
    import soartlab.runs as runs

    lot = demo.select(range(200))
    before = predict(load_run(tiny_run_copy), lot)
    files_before = sorted(p.name for p in tiny_run_copy.path.iterdir())
    weights, references = other_run_files(tiny_run, tiny_run.record)
    real_write = runs.atomic_write_bytes

    def disk_full_after_the_weights(path, data):
        if path.name == "references.safetensors":
            raise OSError(28, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr(runs, "atomic_write_bytes", disk_full_after_the_weights)
    new_record = replace(tiny_run.record, created="2030-01-01T00:00:00+00:00")
    with pytest.raises(OSError, match="No space"):
        tiny_run_copy.write(new_record, weights, references)
    pd.testing.assert_frame_equal(predict(load_run(tiny_run_copy), lot), before)
    assert sorted(p.name for p in tiny_run_copy.path.iterdir()) == files_before
    assert sorted(p.name for p in tiny_run_copy.path.parent.iterdir()) == [tiny_run_copy.run_id]


def test_a_failed_swap_puts_the_old_run_back(tiny_run, tiny_run_copy, demo, monkeypatch):
    import os

    lot = demo.select(range(50))
    before = predict(load_run(tiny_run_copy), lot)
    weights, references = other_run_files(tiny_run, tiny_run.record)
    real_rename, calls = os.rename, []

    def second_rename_fails(source, target):
        calls.append(target)
        if len(calls) == 2:  # the new folder moving in
            raise OSError(5, "Input/output error")
        return real_rename(source, target)

    monkeypatch.setattr(os, "rename", second_rename_fails)
    with pytest.raises(OSError, match="Input/output"):
        tiny_run_copy.write(replace(tiny_run.record, created="2030-01-01"), weights, references)
    monkeypatch.undo()
    pd.testing.assert_frame_equal(predict(load_run(tiny_run_copy), lot), before)
    assert sorted(p.name for p in tiny_run_copy.path.parent.iterdir()) == [tiny_run_copy.run_id]


def test_a_rewrite_replaces_the_run_and_keeps_the_training_state(tiny_run, tiny_run_copy, demo):
    tiny_run_copy.state_path.write_bytes(b"state of the run being resumed")
    weights, references = other_run_files(tiny_run, tiny_run.record)
    lot = demo.select(range(50))
    before = embed_dataset(load_run(tiny_run_copy), lot)
    written = tiny_run_copy.write(
        replace(tiny_run.record, created="2030-01-01T00:00:00+00:00"), weights, references
    )
    loaded = load_run(tiny_run_copy)
    assert loaded.record == written and loaded.record.created.startswith("2030")
    assert np.allclose(embed_dataset(loaded, lot), before + 1.0, atol=1e-5)
    assert tiny_run_copy.state_path.read_bytes() == b"state of the run being resumed"
    assert sorted(p.name for p in tiny_run_copy.path.parent.iterdir()) == [tiny_run_copy.run_id]


def test_record_and_weights_of_two_runs_are_refused_naming_both(tiny_run, tiny_run_copy):
    from soartlab.checkpoint import checkpoint_bytes
    from soartlab.files import atomic_write_bytes

    other = replace(tiny_run.record, run_id="20300101-000000-0a0b0c", created="2030-01-01")
    weights = checkpoint_bytes(tiny_run.result.model, other.to_dict())["safetensors"]
    atomic_write_bytes(tiny_run_copy.weights_path, weights)
    with pytest.raises(CheckpointError) as info:
        load_run(tiny_run_copy)
    message = str(info.value)
    assert f"run {tiny_run.record.run_id} (created {tiny_run.record.created})" in message
    assert "run 20300101-000000-0a0b0c (created 2030-01-01)" in message
    assert "mixes two runs" in message and "run_id, created" in message


def test_a_record_whose_labels_differ_from_the_weights_is_refused(tiny_run, tiny_run_copy):
    import json

    raw = json.loads(tiny_run_copy.record_path.read_text())
    raw["label_names"] = list(reversed(raw["label_names"]))
    raw["good_index"] = len(raw["label_names"]) - 1
    tiny_run_copy.record_path.write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="differ in label_names, good_index"):
        load_run(tiny_run_copy)


def test_references_of_another_run_are_refused(tiny_run, tiny_run_copy):
    from safetensors.numpy import save

    emb, labels = tiny_run.result.references
    tiny_run_copy.references_path.write_bytes(
        save({"embeddings": emb[:100], "labels": labels[:100]})
    )
    with pytest.raises(CheckpointError, match="holds 100 references.*2400 training rows"):
        load_run(tiny_run_copy)
    tiny_run_copy.references_path.write_bytes(
        save({"embeddings": emb[:, :64].copy(), "labels": labels})
    )
    with pytest.raises(CheckpointError, match="64-wide embeddings; the model makes 128"):
        load_run(tiny_run_copy)
    tiny_run_copy.references_path.write_bytes(
        save({"embeddings": emb, "labels": labels.astype(np.float32)})
    )
    with pytest.raises(CheckpointError, match="float32 labels; expected integers"):
        load_run(tiny_run_copy)


def test_a_damaged_normalisation_is_refused_when_the_run_is_opened(tiny_run_copy):
    import json

    original = tiny_run_copy.record_path.read_text()
    for field, value, shown in [("mean", 1e300, "mean 1e+300"), ("std", 1e-300, "std 1e-300")]:
        raw = json.loads(original)
        raw["normalization"][field] = value
        tiny_run_copy.record_path.write_text(json.dumps(raw))
        with pytest.raises(CheckpointError, match=f"field 'normalization'.*{re.escape(shown)}"):
            load_run(tiny_run_copy)


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
    # With no transform chosen, the run trains with one that learns.
    assert learnability(tiny_run.dataset, config, auto_transform=True).learns


def test_training_setup_decides_on_the_network_it_will_train(tiny_run):
    from soartlab.tuning import default_transform
    from soartlab.workflow import training_setup

    setup = training_setup(tiny_run.dataset, tiny_run.config, auto_transform=True)
    assert setup.view.learns
    expected, suggested = default_transform(setup.pairs.matched, setup.pairs.unmatched)
    assert setup.config.transform == expected and setup.suggested == suggested
    # the article's values learn on the demo set: they are its default
    assert expected == tiny_run.config.transform and not suggested
    again = training_setup(tiny_run.dataset, tiny_run.config, resume_from=tiny_run.run.path)
    assert not again.suggested and again.config.transform == tiny_run.config.transform
    assert not np.allclose(again.pairs.matched, setup.pairs.matched)  # the trained model's
