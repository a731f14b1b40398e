import io
import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from bench.article_way import EmbeddingNet, SiameseNet
from soartlab.cli import AUTO_TRANSFORM, build_parser, main
from soartlab.config import CLI_SETTINGS, TrainConfig
from soartlab.data import load_dataset, to_arrays


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "soartlab", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    data = tmp / "demo.csv"
    out = tmp / "run"
    done = run_cli("demo", "--out", data, "--samples", 300)
    assert done.returncode == 0, done.stderr
    done = run_cli(
        "train",
        "--data",
        data,
        "--out",
        out,
        "--epochs",
        2,
        "--pairs-per-epoch",
        512,
        "--device",
        "cpu",
    )
    assert done.returncode == 0, done.stderr
    return data, out, done


def test_train_writes_run_folder_and_reports_progress(trained):
    _, out, done = trained
    assert (out / "model.pth").exists() and (out / "model.safetensors").exists()
    run = json.loads((out / "run.json").read_text())
    for key in ("config", "label_names", "input_shape", "normalization", "transform", "metrics"):
        assert key in run
    assert {"accuracy", "escape_rate", "overkill_rate"} <= set(run["metrics"])
    assert "epoch 1/2" in done.stderr and "epoch 2/2" in done.stderr


def test_pth_loads_into_the_seeds_own_classes(trained):
    data, out, _ = trained
    seed_model = SiameseNet(EmbeddingNet())
    seed_model.load_state_dict(torch.load(out / "model.pth"))
    seed_model.eval()
    from soartlab.workflow import embed_dataset, load_run

    run = load_run(out)
    X, _ = to_arrays(load_dataset(data))
    # the article's classes take normalised samples; SOART Lab's model normalises raw ones
    normalised = run.record.normalization.apply(X[:50]).astype(np.float32)
    with torch.no_grad():
        ours = run.model.get_embedding(torch.from_numpy(X[:50].copy()).reshape(-1, 36, 39))
        theirs = seed_model.get_embedding(torch.from_numpy(normalised).reshape(-1, 36, 39))
    assert torch.equal(ours, theirs)
    assert np.allclose(embed_dataset(run, load_dataset(data))[:50], theirs.numpy(), atol=1e-6)


def test_evaluate_prints_metrics_json(trained):
    data, out, _ = trained
    done = run_cli("evaluate", "--run", out, "--data", data)
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    assert metrics["n_samples"] == 300 and 0 <= metrics["accuracy"] <= 1


def test_predict_writes_csv(trained, tmp_path):
    data, out, _ = trained
    csv = tmp_path / "pred.csv"
    done = run_cli("predict", "--run", out, "--data", data, "--out", csv)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(csv)
    assert len(table) == 300 and {"predicted", "pass_fail", "distance"} <= set(table.columns)


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data", "missing.csv", "--out", "r"], "missing.csv"),
        (["train", "--data", "bad.csv", "--out", "r"], "bad.csv"),
        (["train", "--data", "x.csv", "--out", "r", "--epochs", "0"], "--epochs must be"),
        (["evaluate", "--run", "nowhere", "--data", "x.csv"], "nowhere"),
        (["demo", "--out", "demo.txt"], ".csv or .parquet"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.csv").write_text("label,a,b\ngood,1,2\ndent,1\n")
    (tmp_path / "x.csv").write_text("label,a\ngood,1\ndent,2\n")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err
    assert "Traceback" not in err


def test_train_options_are_the_declared_settings_with_their_defaults():
    args = build_parser().parse_args(["train", "--data", "x.csv", "--out", "r"])
    for setting in CLI_SETTINGS:
        # --scale and --offset not given: Suggest's for the data (workflow.training_setup)
        default = None if setting.name in AUTO_TRANSFORM else setting.default
        assert getattr(args, setting.name) == default, setting.flag
    assert TrainConfig.from_namespace(args) == TrainConfig()
    # The flags the CLI has always had (the range test below passes each to the parser).
    assert [s.flag for s in CLI_SETTINGS] == [
        "--loss",
        "--margin",
        "--epochs",
        "--batch-size",
        "--lr",
        "--pairs-per-epoch",
        "--seed",
        "--device",
        "--test-size",
        "--good-class",
        "--target-escape",
        "--arch",
        "--augment",
        "--val-size",
        "--patience",
        "--weight-decay",
        "--scale",
        "--offset",
        "--floor",
    ]


def _just_outside(setting) -> list[str]:
    if setting.kind is int:
        return [str(setting.low - 1), str(setting.high + 1)]
    low = (
        setting.low
        if setting.closed in ("right", "neither")
        else np.nextafter(setting.low, -np.inf)
    )
    high = (
        setting.high
        if setting.closed in ("left", "neither")
        else np.nextafter(setting.high, np.inf)
    )
    return [repr(float(low)), repr(float(high)), "nan", "inf"]


@pytest.mark.parametrize(
    "flag, value",
    [(s.flag, value) for s in CLI_SETTINGS if s.kind is not str for value in _just_outside(s)]
    + [
        ("--seed", str(2**70)),
        ("--epochs", "9" * 400),
        ("--floor", "1e300"),
        ("--lr", "10"),
        ("--good-class", ""),
    ],
)
def test_out_of_range_option_exits_2_naming_it(tmp_path, capsys, flag, value):
    # The data file is never read: the settings are checked first. "--flag=value": argparse
    # takes "-5e-324" (just below a range starting at 0) for an option otherwise.
    args = [
        "train",
        "--data",
        str(tmp_path / "x.csv"),
        "--out",
        str(tmp_path / "r"),
        f"{flag}={value}",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {flag} must be "), err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "flag, value", [("--loss", "triplet"), ("--device", "tpu"), ("--epochs", "1.5")]
)
def test_unparsable_option_is_refused_by_argparse_naming_it(capsys, flag, value):
    with pytest.raises(SystemExit) as info:
        main(["train", "--data", "x.csv", "--out", "r", flag, value])
    assert info.value.code == 2
    assert f"argument {flag}: invalid" in capsys.readouterr().err


# --- options checked before work starts ---------------------------------------------------


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    return err


def test_train_out_that_cannot_be_written_is_refused_before_the_data_is_read(
    tmp_path, capsys, unwritable_folder
):
    (tmp_path / "file").write_text("not a folder")
    cases = [
        (tmp_path / "file", "is a file; a run needs a folder"),
        (tmp_path / "file" / "run", "is not a folder"),
        (unwritable_folder / "run", "Cannot write in"),
    ]
    for out, message in cases:
        # the data file does not exist: an --out checked later would report it instead
        assert main(["train", "--data", str(tmp_path / "missing.csv"), "--out", str(out)]) == 2
        err = one_error_line(capsys)
        assert err.startswith("error: --out: ") and message in err, err


def test_predict_out_that_is_the_data_file_is_refused_and_the_data_kept(trained, tmp_path, capsys):
    data, run_dir, _ = trained
    lot = tmp_path / "lot.csv"
    shutil.copy(data, lot)
    before = lot.read_bytes()
    (tmp_path / "sub").mkdir()
    os.link(lot, tmp_path / "same-file.csv")
    for out in [lot, tmp_path / "sub" / ".." / "lot.csv", tmp_path / "same-file.csv"]:
        assert main(["predict", "--run", str(run_dir), "--data", str(lot), "--out", str(out)]) == 2
        assert "would overwrite the input" in one_error_line(capsys)
    assert lot.read_bytes() == before


def test_predict_out_in_a_missing_or_read_only_folder_is_refused_before_predicting(
    tmp_path, capsys, unwritable_folder
):
    cases = [
        (tmp_path / "missing" / "pred.csv", "does not exist; create it first"),
        (unwritable_folder / "pred.csv", "Cannot write in"),
        (tmp_path, "is a folder"),
    ]
    for out, message in cases:
        # no run there: an --out checked after loading the run would report the run
        args = ["predict", "--run", str(tmp_path / "no-run"), "--data", "x.csv", "--out", str(out)]
        if out == tmp_path:
            args[-1] = str(tmp_path / "dir.csv")
            (tmp_path / "dir.csv").mkdir()
        assert main(args) == 2
        err = one_error_line(capsys)
        assert err.startswith("error: --out") and message in err, err


def test_predict_csv_has_a_decision_for_every_part(trained, tmp_path):
    data, out, _ = trained
    csv = tmp_path / "pred.csv"
    assert main(["predict", "--run", str(out), "--data", str(data), "--out", str(csv)]) == 0
    table = pd.read_csv(csv, keep_default_na=False)
    assert {"decision", "reason"} <= set(table.columns)
    assert set(table["decision"]) <= {"pass", "review", "fail"}
    assert ((table["decision"] == "pass") == (table["pass_fail"] == "pass")).all()


def test_a_nan_loss_exits_1_and_is_recorded(trained, tmp_path, monkeypatch, capsys):
    from soartlab.losses import ContrastiveLoss

    real_forward, calls = ContrastiveLoss.forward, []

    def nan_from_the_third_step(self, e1, e2, target):
        calls.append(1)
        loss = real_forward(self, e1, e2, target)
        return loss * float("nan") if len(calls) > 2 else loss

    monkeypatch.setattr(ContrastiveLoss, "forward", nan_from_the_third_step)
    data, _, _ = trained
    out = tmp_path / "nan-run"
    args = ["train", "--data", str(data), "--out", str(out), "--epochs", "3"]
    args += ["--pairs-per-epoch", "256", "--batch-size", "128", "--device", "cpu", "--quiet"]
    assert main(args) == 1
    assert "training did not finish: loss became NaN in epoch 2" in capsys.readouterr().err
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "nan_loss" and len(record["history"]) == 1


# --- transforms that teach nothing (issue 9: digits trained at scale 5.085, offset -21.26) ---


@pytest.fixture(scope="module")
def digits_csv(tmp_path_factory):
    """sklearn's digits (8×8 images, 10 classes) as a table the app reads as images."""
    from sklearn.datasets import load_digits

    from soartlab.data import write_table

    digits = load_digits()
    path = tmp_path_factory.mktemp("digits") / "digits.csv"
    images = (digits.images / 16.0).astype(np.float32)
    return write_table(path, images, digits.target, [str(d) for d in range(10)])


def test_train_refuses_a_transform_that_leaves_no_gradient(digits_csv, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--data", digits_csv, "--out", out, "--scale", "5.085", "--offset", "-21.26"]
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "scale 5.085, offset -21.26, floor 0" in err and "no matched pairs" in err
    assert "Use Suggest" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--scale", "0", "--offset", "0"], "--scale must be a number in (0, 1e+06]"),
        (["--scale", "2"], "--scale and --offset go together"),
    ],
)
def test_train_refuses_scale_zero_and_half_a_transform(tmp_path, capsys, extra, message):
    args = ["train", "--data", str(tmp_path / "x.csv"), "--out", str(tmp_path / "r"), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_a_run_that_learns_nothing_ends_not_learning(digits_csv, tmp_path, capsys, monkeypatch):
    # Past the pre-training check, the digits setting gives no gradient in any step.
    from soartlab import workflow

    monkeypatch.setattr(workflow, "check_learnable", lambda *args, **kwargs: None)
    out = tmp_path / "run"
    args = ["train", "--data", digits_csv, "--out", out, "--scale", "5.085", "--offset", "-21.26"]
    args += ["--epochs", "3", "--pairs-per-epoch", "256", "--device", "cpu", "--quiet"]
    assert main([str(a) for a in args]) == 1
    err = capsys.readouterr().err
    assert "not learning: in epoch 1 no step had a gradient" in err
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "not_learning"
    assert [row["epoch"] for row in record["history"]] == [1]
    assert record["history"][0]["loss"] == pytest.approx(0.5)


def test_train_records_baselines_and_a_transform_that_learns_by_default(trained):
    _, out, done = trained
    record = json.loads((out / "run.json").read_text())
    assert set(record["baselines"]) == {"raw_knn", "untrained"}
    assert all(0 <= v <= 1 for v in record["baselines"].values())
    assert record["status"] == "finished"
    # on the demo set the article's values learn, so they are the default there
    assert "transform: the article's values" in done.stderr
    assert record["transform"] == {"scale": 0.5, "offset": -0.25, "floor": 0.0}


def test_suggest_prints_a_transform_that_learns(trained, tiny_run, capsys):
    data, _, _ = trained
    assert main(["suggest", "--data", str(data), "--seed", "3", "--pairs", "400"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"scale", "offset", "floor", "pulled", "pushed", "loss", "learns"} <= set(out)
    assert out["learns"] is True and out["source"] == "initial network (seed 3)"
    assert 0 <= out["roc_auc"] <= 1 and 0 <= out["overlap"] <= 1
    assert out["pulled"] >= 0.05 and out["pushed"] >= 0.05


def test_suggest_on_a_run_tunes_for_its_model(tiny_run, tmp_path, capsys):
    from soartlab.data import save_dataset

    data = save_dataset(tiny_run.dataset, tmp_path / "demo.parquet")
    args = ["suggest", "--data", str(data), "--run", str(tiny_run.run.path), "--pairs", "400"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == f"run {tiny_run.run.path}" and out["learns"] is True


@pytest.mark.parametrize(
    "extra, message",
    [(["--pairs", "1"], "--pairs must be"), (["--margin", "-1"], "--margin must be")],
)
def test_suggest_bad_input_exits_2(trained, capsys, extra, message):
    data, _, _ = trained
    assert main(["suggest", "--data", str(data), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_predict_writes_xlsx_with_the_file_names(trained, tmp_path):
    from openpyxl import load_workbook

    _, out, _ = trained
    lot = tmp_path / "lot.zip"
    with zipfile.ZipFile(lot, "w") as zf:
        for i in range(3):
            buffer = io.BytesIO()
            Image.fromarray(np.full((36, 39), 40 * i, np.uint8)).save(buffer, "PNG")
            zf.writestr(f"=部品{i}.png", buffer.getvalue())  # a name Excel would run
    xlsx = tmp_path / "pred.xlsx"
    assert main(["predict", "--run", str(out), "--data", str(lot), "--out", str(xlsx)]) == 0
    sheet = load_workbook(xlsx).active
    header = [c.value for c in sheet[1]]
    assert header[0] == "file" and "decision" in header
    names = [sheet.cell(row=r, column=1) for r in range(2, 5)]
    assert [c.value for c in names] == ["=部品0.png", "=部品1.png", "=部品2.png"]
    assert all(c.data_type == "s" for c in names)
    decisions = {sheet.cell(row=r, column=header.index("decision") + 1).value for r in (2, 3, 4)}
    assert decisions <= {"pass", "fail", "review"}
    csv = tmp_path / "pred.csv"
    assert main(["predict", "--run", str(out), "--data", str(lot), "--out", str(csv)]) == 0
    assert csv.read_bytes().startswith("\ufefffile,".encode())
    ods = tmp_path / "p.ods"
    assert main(["predict", "--run", str(out), "--data", str(lot), "--out", str(ods)]) == 2


def test_evaluate_resizes_a_zip_of_images_to_the_runs_size(trained, tmp_path, capsys):
    _, out, _ = trained
    lot = tmp_path / "small.zip"
    with zipfile.ZipFile(lot, "w") as zf:
        for k, name in enumerate(["good", "burr"]):
            for i in range(2):
                buffer = io.BytesIO()
                Image.fromarray(np.full((8, 8), 60 * k + i, np.uint8)).save(buffer, "PNG")
                zf.writestr(f"{name}/{i}.png", buffer.getvalue())
    assert main(["evaluate", "--run", str(out), "--data", str(lot)]) == 0
    assert json.loads(capsys.readouterr().out)["n_samples"] == 4
