"""Every page of the app, driven through streamlit.testing's AppTest."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from soartlab.ui import state, tune, tune_live

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    "pages/home.py",
    "pages/data.py",
    "pages/tune.py",
    "pages/train.py",
    "pages/explore.py",
    "pages/predict.py",
    "pages/runs.py",
]
TIMEOUT = 120
TINY_TRAINING = {"train_epochs": 1, "train_pairs_per_epoch": 256, "train_batch_size": 64}


def new_app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)


@pytest.fixture
def app(tmp_path, monkeypatch) -> AppTest:
    monkeypatch.setenv("SOARTLAB_HOME", str(tmp_path / "runs"))
    at = new_app()
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture(scope="module")
def trained_run(tiny_run, tmp_path_factory) -> Path:
    """The session's tiny run on the demo set, copied into a run store of this module's."""
    import shutil

    home = tmp_path_factory.mktemp("runs")
    return Path(shutil.copytree(tiny_run.run.path, home / tiny_run.run.run_id))


@pytest.fixture
def app_with_run(trained_run, monkeypatch) -> AppTest:
    monkeypatch.setenv("SOARTLAB_HOME", str(trained_run.parent))
    at = new_app()
    at.run()
    at.session_state[state.CURRENT_RUN] = str(trained_run)
    at.run()
    assert not at.exception, at.exception
    return at


def open_page(at: AppTest, page: str) -> AppTest:
    at.switch_page(page).run()
    assert not at.exception, f"{page}: {at.exception}"
    return at


def chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def button(at: AppTest, label: str):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r}; have {[b.label for b in at.button]}"
    return matches[0]


def wait_for_job(at: AppTest, seconds: float = 90) -> None:
    job = at.session_state[state.TRAIN_JOB]
    deadline = time.monotonic() + seconds
    while job.is_running() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not job.is_running(), "training did not finish in time"
    at.run()
    assert not at.exception, at.exception


# --- home and data ------------------------------------------------------------------------


def test_first_open_loads_the_demo_set(app):
    data = app.session_state[state.DATASET]
    assert data.name == "demo set" and len(data.dataset) > 0
    text = " ".join(m.value for m in app.markdown) + " ".join(c.value for c in app.caption)
    assert "demo set" in text
    assert app.get("page_link"), "home shows the next step as a link"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_before_training(app, page):
    open_page(app, page)
    assert not app.error, [e.value for e in app.error]


@pytest.mark.parametrize("page", PAGES[2:5])
def test_pages_without_data_show_a_hint_and_link(app, page):
    app.session_state[state.DATASET] = None
    open_page(app, page)
    assert any("No data loaded" in i.value for i in app.info)
    links = [link.proto.page for link in app.get("page_link")]
    assert any("data" in link for link in links), links


def test_data_page_shows_counts_and_samples(app):
    open_page(app, "pages/data.py")
    specs = chart_specs(app)
    assert len(specs) == 2  # class counts and the sample grid
    bar = specs[0]["data"][0]
    assert bar["type"] == "bar"
    assert bar["x"] == app.session_state[state.DATASET].dataset.features["label"].names
    assert any("Normalisation" in m.value for m in app.markdown)


def test_bad_upload_shows_error_and_keeps_the_data(app):
    before = app.session_state[state.DATASET]
    app.session_state[state.PENDING_UPLOAD] = (
        "broken.csv",
        b"label,f1\ngood,1\nbad,abc\n",
        "label",
        "",
    )
    open_page(app, "pages/data.py")
    assert app.error, "a bad file must show st.error"
    assert "broken.csv" in app.error[0].value
    assert app.session_state[state.DATASET] is before


def test_good_upload_replaces_the_data(app, tmp_path):
    from soartlab.demo import write_demo

    path = tmp_path / "small.csv"
    write_demo(path, n_samples=120, seed=1)
    app.session_state[state.PENDING_UPLOAD] = ("small.csv", path.read_bytes(), "label", "")
    open_page(app, "pages/data.py")
    assert not app.error, [e.value for e in app.error]
    data = app.session_state[state.DATASET]
    assert data.name == "small.csv" and len(data.dataset) == 120


def test_unsupported_upload_type_is_refused(app):
    app.session_state[state.PENDING_UPLOAD] = ("notes.txt", b"hello", "label", "")
    open_page(app, "pages/data.py")
    assert app.error and "unsupported type" in app.error[0].value


# --- tune ---------------------------------------------------------------------------------


def open_tune(at: AppTest, *, live: bool = False, **values) -> AppTest:
    """The Tune page; ``live=False`` is the server-drawn path (AppTest runs no
    JavaScript); ``values`` preset session-state keys (slider values, preview steps)."""
    at.session_state[tune.LIVE_KEY] = live
    for key, value in values.items():
        at.session_state[key] = value
    return open_page(at, "pages/tune.py")


def metric_values(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_tune_slider_redraws_the_histograms(app):
    open_tune(app)
    before = chart_specs(app)
    assert len(before) == 1
    traces = before[0]["data"]
    assert {t["type"] for t in traces} == {"bar"}  # binned server-side
    # The after panel carries the transform's floor and the loss's margin.
    texts = [a["text"] for a in before[0]["layout"]["annotations"]]
    assert "floor 0" in texts and "margin 1" in texts
    app.slider(key=tune.OFFSET_KEY).set_value(-1.0).run()
    assert not app.exception
    after = chart_specs(app)
    assert after[0]["data"] != traces, "moving the offset must change the after-tune bars"
    # The raw (before tune) panel keeps its bars: only the transform is re-applied.
    assert after[0]["data"][0] == traces[0]


def test_tune_shows_the_loss_view_and_it_follows_the_sliders(app):
    open_tune(app)
    figures = metric_values(app)
    assert {"Pulled in", "Pushed out", "Loss now"} <= set(figures)
    app.slider(key=tune.OFFSET_KEY).set_value(0.5).run()
    moved = metric_values(app)
    assert moved["Loss now"] != figures["Loss now"]
    assert moved["ROC AUC"] == figures["ROC AUC"], "scale and offset cannot change ROC AUC"
    assert any("cannot" in e.proto.body for e in app.get("markdown")), "the page says why"


def test_tune_warns_when_nothing_would_be_learnt_and_suggest_fixes_it(app):
    # The setting on digits: every pair on the floor, loss 0.5 in every epoch.
    open_tune(app, **{tune.SCALE_KEY: 5.085, tune.OFFSET_KEY: -21.26})
    assert metric_values(app)["Pulled in"] == "0.0%"
    assert app.warning and "nothing would be learnt" in app.warning[0].value
    button(app, "Suggest").click().run()
    assert not app.exception and not app.error and not app.warning
    figures = metric_values(app)
    assert figures["Pulled in"] != "0.0%" and figures["Pushed out"] != "0.0%"


def test_tune_live_component_gets_fine_bins_not_points(app):
    open_tune(app, live=True)
    assert not chart_specs(app), "the live component draws the histograms"
    [component] = app.get("bidi_component")
    data = json.loads(component.proto.json)
    matched, unmatched = data["fine"]["matched"], data["fine"]["unmatched"]
    assert len(matched) == len(unmatched) == tune_live.FINE_BINS
    assert sum(matched) + sum(unmatched) == tune.DEFAULT_PAIRS
    # The sliders start where Train starts when nothing is stored: on the demo set the
    # article's values, under which the loss learns there (tuning.default_transform).
    assert data["values"] == {
        "scale": app.session_state[tune.SCALE_KEY],
        "offset": app.session_state[tune.OFFSET_KEY],
        "floor": 0.0,
    }
    assert data["values"] == {"scale": 0.5, "offset": -0.25, "floor": 0.0}
    assert data["margin"] == 1.0
    assert {"Pulled in", "Pushed out", "Loss now"} <= set(metric_values(app))


def test_tune_component_report_is_stored_and_garbage_is_not():
    assert tune_live.reported_values({"scale": 2, "offset": -1.5, "floor": 0.0}) == {
        "scale": 2.0,
        "offset": -1.5,
        "floor": 0.0,
    }
    for payload in (None, [], {"scale": 1}, {"scale": "1", "offset": 0, "floor": 0},
                    {"scale": float("nan"), "offset": 0, "floor": 0},
                    {"scale": True, "offset": 0, "floor": 0}):  # fmt: skip
        assert tune_live.reported_values(payload) is None


def test_suggest_and_use_for_training(app):
    open_tune(app)
    assert app.slider(key=tune.OFFSET_KEY).value == -0.25  # the default on the demo set
    button(app, "Suggest").click().run()
    assert not app.exception and not app.error
    suggested = app.slider(key=tune.OFFSET_KEY).value
    assert suggested != -0.25
    button(app, "Article's values").click().run()
    assert app.slider(key=tune.OFFSET_KEY).value == -0.25
    button(app, "Suggest").click().run()
    assert app.slider(key=tune.OFFSET_KEY).value == pytest.approx(suggested)
    button(app, "Use for training").click().run()
    assert [m.value for m in app.success] == ["Stored for training."]
    tuned = app.session_state[state.TRANSFORM]
    assert tuned.transform.offset == pytest.approx(app.slider(key=tune.OFFSET_KEY).value)
    open_page(app, "pages/train.py")
    assert any(f"{tuned.transform.scale:.3g}" in c.value for c in app.caption)


def test_tune_defaults_to_the_network_to_be_trained(app):
    open_tune(app)
    assert app.radio(key=state.TUNE_SOURCE).value == tune.SOURCE_NETWORK
    assert any("untrained network for seed 0" in c.value for c in app.caption)
    network = chart_specs(app)[0]["data"][0]
    app.radio(key=state.TUNE_SOURCE).set_value(tune.SOURCE_RAW).run()
    assert not app.exception and not app.error
    assert chart_specs(app)[0]["data"][0]["x"] != network["x"], "another scale of gamma"


@pytest.mark.parametrize("distance", ["Euclidean", "Minkowski-p", "Cosine", "SOART3 yita"])
def test_tune_other_distances(app, distance):
    open_tune(app)
    app.selectbox(key="tune_distance").set_value(distance).run()
    assert not app.exception and not app.error
    assert len(chart_specs(app)) == 1


def wait_for_preview(at: AppTest, seconds: float = 120) -> None:
    job = at.session_state[tune.PREVIEW_JOB]
    job.join(seconds)
    assert not job.is_running(), "preview did not finish in time"
    at.run()
    assert not at.exception, at.exception


def test_preview_shows_where_the_setting_leads_and_restarts_when_a_slider_moves(app):
    open_tune(app, **{tune.PREVIEW_STEPS_KEY: 10})
    button(app, "Preview").click().run()
    first = app.session_state[tune.PREVIEW_JOB]
    wait_for_preview(app)
    figures = metric_values(app)
    assert "ROC AUC after preview" in figures and figures["Steps"] == "10"
    assert len(chart_specs(app)) == 3  # the tuning histograms and the preview's two
    # A new setting starts a new preview of it (the old one had ended here).
    app.slider(key=tune.OFFSET_KEY).set_value(-0.1).run()
    second = app.session_state[tune.PREVIEW_JOB]
    assert second is not first and second.setting != first.setting
    wait_for_preview(app)
    assert second.snapshot().status == "done"


# --- train --------------------------------------------------------------------------------


def start_training(at: AppTest, **settings) -> None:
    for key, value in {**TINY_TRAINING, **settings}.items():
        at.session_state[key] = value
    open_page(at, "pages/train.py")
    button(at, "Start training").click().run()
    assert not at.exception, at.exception


def test_training_finishes_offers_downloads_and_next_round(app):
    start_training(app)
    assert any(p.proto.value >= 0 for p in app.get("progress")), "a progress bar while it runs"
    wait_for_job(app)
    assert not app.error, [e.value for e in app.error]
    labels = [b.proto.label for b in app.get("download_button")]
    assert "Download model (.pth)" in labels and "Download bundle (.zip)" in labels
    run_dir = app.session_state[state.CURRENT_RUN]
    assert (Path(run_dir) / "model.pth").exists() and (Path(run_dir) / "run.json").exists()
    assert any(m.label == "Accuracy" for m in app.metric)
    # what training added, and the baselines it is measured against
    [accuracy] = [m for m in app.metric if m.label == "Accuracy"]
    assert "pts over the untrained network" in accuracy.delta
    assert {"Untrained network", "kNN on raw features"} <= {m.label for m in app.metric}
    assert any("Finished: 1 epoch(s)" in p.proto.text for p in app.get("progress"))
    [held_out] = [m.value for m in app.metric if m.label == "Held-out samples"]
    assert int(held_out.replace(",", "")) > 0
    # After training every page still renders.
    for page in PAGES:
        open_page(app, page)
        assert not app.error, (page, [e.value for e in app.error])
    # "Next round": re-tune on this model's embeddings, then continue from it.
    open_page(app, "pages/train.py")
    button(app, "Next round: re-tune on the new embeddings").click().run()
    assert not app.exception
    assert app.session_state[state.RESUME_FROM] == run_dir
    assert app.radio(key=state.TUNE_SOURCE).value == tune.SOURCE_MODEL
    assert app.get("bidi_component"), "the Tune page draws its live histograms"
    open_page(app, "pages/train.py")
    assert any("Next round" in i.value for i in app.info)


def test_stop_ends_training_and_clicks_elsewhere_do_not(app):
    start_training(app, train_epochs=200, train_pairs_per_epoch=20_000)
    job = app.session_state[state.TRAIN_JOB]
    # Moving around the app reruns scripts but leaves the worker alone.
    open_page(app, "pages/data.py")
    open_page(app, "pages/home.py")
    assert job.is_running()
    assert any(m.label == "Training" and m.value == "running" for m in app.metric)
    open_page(app, "pages/train.py")
    button(app, "Stop").click().run()
    wait_for_job(app, seconds=90)
    snap = job.snapshot()
    assert snap.status == "stopped" and snap.run_dir is not None
    assert any("stopped by the user in epoch 1, step" in w.value for w in app.warning)
    assert any(
        p.proto.text.startswith("Stopped (stopped by the user in epoch 1, step ")
        for p in app.get("progress")
    )
    assert [b for b in app.get("download_button") if b.proto.label == "Download model (.pth)"]


def test_training_refuses_a_tuned_transform_that_teaches_nothing(app):
    # Issue 9: the digits run trained at scale 5.085, offset -21.26 and "finished".
    from soartlab.transform import GammaTransform

    app.session_state[state.TRANSFORM] = state.TunedTransform(GammaTransform(5.085, -21.26, 0.0))
    for key, value in TINY_TRAINING.items():
        app.session_state[key] = value
    open_page(app, "pages/train.py")
    # said before Start
    warnings = [w.value for w in app.warning]
    assert any("scale 5.085, offset -21.26" in w and "Start would refuse" in w for w in warnings)
    start_training(app)
    wait_for_job(app)
    errors = [e.value for e in app.error]
    assert any("scale 5.085, offset -21.26" in e and "Suggest" in e for e in errors), errors
    assert app.session_state[state.TRAIN_JOB].snapshot().run_dir is None
    assert not any(m.label == "Accuracy" for m in app.metric)


def test_training_error_is_shown_not_raised(app):
    from soartlab.data import from_arrays

    one_class = from_arrays(
        np.random.default_rng(0).random((20, 36 * 39)), np.zeros(20, int), ["good"], (36, 39)
    )
    app.session_state[state.DATASET] = state.LoadedData(one_class, "one class", "good", 99)
    start_training(app)
    wait_for_job(app)
    assert not app.exception
    assert any("2 classes" in e.value for e in app.error), [e.value for e in app.error]


# --- after training -----------------------------------------------------------------------


def test_explore_shows_scatter_confusion_and_cell_samples(app_with_run):
    at = open_page(app_with_run, "pages/explore.py")
    assert not at.error, [e.value for e in at.error]
    [accuracy] = [m for m in at.metric if m.label == "Accuracy"]
    assert "pts over the untrained network" in accuracy.delta
    specs = chart_specs(at)
    kinds = [{t["type"] for t in spec["data"]} for spec in specs]
    assert {"scattergl"} in kinds and {"heatmap", "scatter"} in kinds
    assert at.selectbox(key="explore_cell").options, "cells to look into"
    assert len(specs) >= 3  # scatter, confusion, the chosen cell's samples
    at.radio(key="explore_dims").set_value("3D").run()
    assert not at.exception
    assert any({"scatter3d"} == {t["type"] for t in spec["data"]} for spec in chart_specs(at))


def test_explore_compares_two_runs(app_with_run, trained_run):
    from soartlab.demo import make_demo
    from soartlab.runs import RunStore
    from soartlab.training import TrainConfig
    from soartlab.workflow import train_run

    config = TrainConfig(loss="euclidean", epochs=1, pairs_per_epoch=256, batch_size=64)
    other, _ = train_run(make_demo(), config, store=RunStore(trained_run.parent), label="baseline")
    at = open_page(app_with_run, "pages/explore.py")
    infos = RunStore(trained_run.parent).list()
    baseline = next(i for i in infos if i.path == other.path)
    at.selectbox(key="explore_compare").set_value(baseline).run()
    assert not at.exception and not at.error
    compared = [c for c in at.get("plotly_chart") if "compare_" in c.proto.id]
    assert len(compared) == 2


def test_tune_on_the_model_embeddings(app_with_run):
    at = open_tune(app_with_run)
    at.radio(key=state.TUNE_SOURCE).set_value(tune.SOURCE_MODEL).run()
    assert not at.exception and not at.error
    assert len(chart_specs(at)) == 1


def test_predict_on_held_out_data(app_with_run):
    at = open_page(app_with_run, "pages/predict.py")
    at.radio(key="predict_sample_source").set_value("The held-out part of the session's data").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [b for b in at.get("download_button") if "predictions" in b.proto.label]
    assert at.dataframe and {"predicted", "pass_fail", "distance"} <= set(
        at.dataframe[0].value.columns
    )


def test_predict_refuses_a_model_upload_without_weights():
    from soartlab.errors import CheckpointError
    from soartlab.ui.predict import load_model_files

    with pytest.raises(CheckpointError, match="run.json"):
        load_model_files([("model.pth", b"not really")])
    with pytest.raises(CheckpointError, match="Upload the model"):
        load_model_files([("run.json", b"{}")])


def test_predict_loads_an_uploaded_bundle_and_pth(trained_run):
    from soartlab.runs import Run
    from soartlab.ui.predict import load_model_files

    run = load_model_files([("bundle.zip", Run(trained_run).bundle())])
    assert run.references is not None
    run = load_model_files(
        [
            ("m.pth", (trained_run / "model.pth").read_bytes()),
            ("run.json", (trained_run / "run.json").read_bytes()),
        ]
    )
    assert run.label_names


def test_runs_page_opens_renames_and_deletes(app_with_run, trained_run, tmp_path):
    import shutil

    from soartlab.runs import RunStore

    # Work on a copy so the module's fixture run stays.
    copy = trained_run.parent / "20000101-000000-abcdef"
    shutil.copytree(trained_run, copy)
    at = open_page(app_with_run, "pages/runs.py")
    at.selectbox(key="runs_selected").set_value(copy.name).run()
    assert [b for b in at.get("download_button") if b.proto.label == "Download model (.pth)"]
    at.text_input(key=f"runs_label_{copy.name}").set_value("renamed ../../x").run()
    button(at, "Rename").click().run()
    assert not at.exception and not at.error
    assert RunStore(trained_run.parent).info(copy.name).label == "renamed ../../x"
    button(at, "Make it the current model").click().run()
    assert at.session_state[state.CURRENT_RUN] == str(copy)
    at.checkbox(key=f"runs_sure_{copy.name}").check().run()
    button(at, "Delete").click().run()
    assert not at.exception and not copy.exists()
    assert at.session_state[state.CURRENT_RUN] is None
    open_page(at, "pages/explore.py")
    assert any("No trained model" in i.value for i in at.info)


def test_two_sessions_never_share_data(app, monkeypatch, tmp_path):
    from soartlab.demo import write_demo

    other = new_app()
    other.run()
    path = tmp_path / "mine.csv"
    write_demo(path, n_samples=80, seed=3)
    app.session_state[state.PENDING_UPLOAD] = ("mine.csv", path.read_bytes(), "label", "")
    open_page(app, "pages/data.py")
    assert app.session_state[state.DATASET].name == "mine.csv"
    other.run()
    assert other.session_state[state.DATASET].name == "demo set"


@pytest.fixture
def store_with_bad_runs(trained_run, tmp_path, monkeypatch) -> Path:
    """A run store with one good run and three that cannot be read: run.json nested
    100,000 deep, an accuracy of "high", and a FIFO named run.json."""
    import os
    import shutil

    home = tmp_path / "runs"
    shutil.copytree(trained_run, home / trained_run.name)
    record = json.loads((trained_run / "run.json").read_text())
    record["metrics"]["accuracy"] = "high"
    bad = {
        "20000101-000000-000001": ("[" * 100_000 + "]" * 100_000).encode(),
        "20000101-000000-000002": json.dumps(record).encode(),
    }
    for run_id, content in bad.items():
        (home / run_id).mkdir()
        (home / run_id / "run.json").write_bytes(content)
    if hasattr(os, "mkfifo"):
        (home / "20000101-000000-000003").mkdir()
        os.mkfifo(home / "20000101-000000-000003" / "run.json")
    monkeypatch.setenv("SOARTLAB_HOME", str(home))
    return home


@pytest.mark.parametrize("page", ["pages/runs.py", "pages/predict.py"])
def test_bad_runs_are_warned_about_and_break_nothing(store_with_bad_runs, trained_run, page):
    at = new_app()
    at.run()
    open_page(at, page)
    assert not at.exception and not at.error, [e.value for e in at.error]
    warnings = [w.value for w in at.warning if "cannot be read" in w.value]
    assert len(warnings) == len(list(store_with_bad_runs.iterdir())) - 1, warnings
    assert any("nested too deeply" in w for w in warnings)
    assert any("metrics.accuracy" in w for w in warnings)
    selectbox = at.selectbox(key="runs_selected" if page == "pages/runs.py" else "predict_run")
    assert len(selectbox.options) == 1 and "tiny run" in selectbox.options[0]


def test_explore_names_the_run_by_its_label(app_with_run):
    at = open_page(app_with_run, "pages/explore.py")
    assert any(c.value.startswith("Run tiny run (") for c in at.caption), [
        c.value for c in at.caption
    ]


def test_the_sidebar_names_the_open_model_by_its_label(trained_run, tmp_path):
    from soartlab.ui.widgets import run_name

    assert run_name(trained_run) == f"tiny run ({trained_run.name})"
    assert run_name(tmp_path / "gone") == "gone"  # deleted from another tab: its id
