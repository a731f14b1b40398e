"""The decision from the command line: the run's decision block, predict's refusal of a
lot on another scale (exit 2), a new target at predict time, unseen defect types and
good-only runs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from soartlab.cli import main
from soartlab.data import load_dataset, to_arrays, write_table

DECISION_FIGURES = (
    "escape_rate",
    "escape_upper_95",
    "overkill_rate",
    "overkill_upper_95",
    "review_rate",
)
TINY = ["--epochs", "2", "--pairs-per-epoch", "512", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def demo_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("decision") / "demo.csv"
    assert main(["demo", "--out", str(path), "--samples", "400"]) == 0
    return path


@pytest.fixture(scope="module")
def run_dir(demo_csv):
    out = demo_csv.parent / "run"
    assert main(["train", "--data", str(demo_csv), "--out", str(out), *TINY]) == 0
    return out


def write_lot(path, X, y, names, shape=(36, 39)):
    """A lot as a table file of 36×39 images, labelled with ``names[y]``."""
    return write_table(path, np.asarray(X).reshape(len(X), *shape), y, names, decimals=None)


def demo_arrays(demo_csv):
    ds = load_dataset(demo_csv)
    X, y = to_arrays(ds)
    return X, y, list(ds.features["label"].names)


@pytest.mark.slow
def test_train_writes_the_decision_block(run_dir, capsys):
    record = json.loads((run_dir / "run.json").read_text())
    block = record["decision"]
    assert block["rule"] == "target_escape" and block["target"] == 0.005
    assert set(block["thresholds"]) == {"pass_below", "fail_above", "unknown_above"}
    for name in DECISION_FIGURES:
        assert 0 <= block[name] <= 1, name
    assert block["escape_upper_95"] >= block["escape_rate"]
    assert block["n_calibration"] + block["n_reported"] == len(record["data"]["test_indices"])
    assert (run_dir / "calibration.safetensors").is_file()


@pytest.mark.slow
def test_a_lot_at_255_times_the_scale_is_refused_with_exit_2(run_dir, demo_csv, tmp_path, capsys):
    X, y, names = demo_arrays(demo_csv)
    lot = write_lot(tmp_path / "lot255.csv", X * 255, y, names)
    out = tmp_path / "pred.csv"
    code = main(["predict", "--run", str(run_dir), "--data", str(lot), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert len(err.strip().splitlines()) == 1
    assert "another scale" in err and "from 0 to 255" in err and "from 0 to 1" in err


@pytest.mark.slow
def test_predict_prints_the_lot_check_and_takes_a_new_target(run_dir, demo_csv, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    args = ["predict", "--run", str(run_dir), "--data", str(demo_csv), "--out", str(out)]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "lot check: 0 of 400 parts" in err and "drift:" in err
    saved = pd.read_csv(out, keep_default_na=False)
    assert main([*args, "--target-escape", "0.3"]) == 0
    err = capsys.readouterr().err
    assert "target escape 0.3" in err
    loose = pd.read_csv(out, keep_default_na=False)
    assert (loose["decision"] == "pass").sum() >= (saved["decision"] == "pass").sum()
    assert main([*args, "--target-escape", "2"]) == 2
    assert "target_escape must be" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_prints_the_decision_figures(run_dir, demo_csv, capsys):
    assert main(["evaluate", "--run", str(run_dir), "--data", str(demo_csv)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    decision = metrics["decision"]
    assert decision["n_parts"] == 400
    assert {*DECISION_FIGURES, "per_type", "escape_upper_95_ppm"} <= set(decision)


@pytest.mark.slow
def test_corrupted_values_never_pass(run_dir, demo_csv, tmp_path, capsys):
    X, y, names = demo_arrays(demo_csv)
    X = X[:40].copy()
    X[0, 5] = 3.4e38  # float32's "invalid" marker: finite in the file
    X[1] = 3.4e38
    X[2, 7] = 1e6  # finite, far outside the images' 0–1
    lot = write_lot(tmp_path / "bad.csv", X, y[:40], names)
    out = tmp_path / "pred.csv"
    assert main(["predict", "--run", str(run_dir), "--data", str(lot), "--out", str(out)]) == 0
    table = pd.read_csv(out, keep_default_na=False)
    assert (table.loc[:2, "decision"] == "review").all()
    assert all(table.loc[:2, "reason"] != "")


@pytest.mark.slow
def test_good_parts_only_make_a_run_without_an_escape_rate(demo_csv, tmp_path, capsys):
    X, y, names = demo_arrays(demo_csv)
    good = y == names.index("good")
    data = write_lot(tmp_path / "good.csv", X[good], y[good], names)
    out = tmp_path / "good-run"
    # usable, but not a run trained to the end: its status says so, and so does the exit
    assert main(["train", "--data", str(data), "--out", str(out), *TINY]) == 1
    err = capsys.readouterr().err
    assert "no escape rate can be measured" in err and "not trained" in err
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "good_only" and "not trained" in record["stop_reason"]
    block = record["decision"]
    assert block["rule"] == "good_only" and block["escape_rate"] is None
    assert block["overkill_upper_95"] is not None
    # it predicts a lot with defects; unknown parts never pass
    pred = tmp_path / "pred.csv"
    lot = write_lot(tmp_path / "lot.csv", X, y, names)
    assert main(["predict", "--run", str(out), "--data", str(lot), "--out", str(pred)]) == 0
    table = pd.read_csv(pred, keep_default_na=False)
    assert set(table["decision"]) <= {"pass", "review", "fail"}
    assert (table.loc[table["defect_type"] == "unknown", "decision"] == "fail").all()
    args = ["predict", "--run", str(out), "--data", str(lot), "--out", str(pred)]
    assert main([*args, "--target-escape", "0.01"]) == 2
    assert "good parts only" in capsys.readouterr().err


@pytest.mark.slow
def test_an_unseen_defect_type_never_passes(demo_csv, tmp_path, capsys):
    X, y, names = demo_arrays(demo_csv)
    unseen = names.index("missing_hole")
    data = write_lot(tmp_path / "seen.csv", X[y != unseen], y[y != unseen], names)
    out = tmp_path / "seen-run"
    assert main(["train", "--data", str(data), "--out", str(out), *TINY]) == 0
    lot = write_lot(tmp_path / "unseen.csv", X[y == unseen], y[y == unseen], names)
    pred = tmp_path / "pred.csv"
    assert main(["predict", "--run", str(out), "--data", str(lot), "--out", str(pred)]) == 0
    table = pd.read_csv(pred, keep_default_na=False)
    assert len(table) == (y == unseen).sum()
    assert (table["decision"] != "pass").all()
    assert np.isin(table["decision"], ["review", "fail"]).all()
