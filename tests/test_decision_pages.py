"""The operating point on Explore and the lot check on Predict, driven through AppTest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from soartlab.ui import state

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def app_with_own_run(tiny_run, tmp_path, monkeypatch) -> tuple[AppTest, Path]:
    """The app with a copy of the tiny run opened (a test may save into it)."""
    run_dir = Path(shutil.copytree(tiny_run.run.path, tmp_path / "runs" / tiny_run.run.run_id))
    monkeypatch.setenv("SOARTLAB_HOME", str(run_dir.parent))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.session_state[state.CURRENT_RUN] = str(run_dir)
    at.run()
    assert not at.exception, at.exception
    return at, run_dir


def decision_figures(at: AppTest) -> dict[str, str]:
    """The operating point panel's metrics: Escape and Overkill with "≤ bound", Review."""
    shown = {m.label: m.value for m in at.metric if "≤" in m.value or m.label == "Review"}
    assert set(shown) == {"Escape", "Overkill", "Review"}, shown
    return shown


def test_explore_slider_rescores_and_the_point_is_saved_into_the_run(app_with_own_run):
    from soartlab.decision import rescore
    from soartlab.workflow import load_run

    at, run_dir = app_with_own_run
    at.switch_page("pages/explore.py").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    slider = at.slider(key="explore_target_escape")
    assert slider.value == 0.5  # the run's saved target, in percent
    before = decision_figures(at)
    slider.set_value(15.0).run()
    after = decision_figures(at)
    assert after != before
    curves = [c for c in at.get("plotly_chart") if "explore_curve" in c.proto.id]
    assert len(curves) == 1
    [save] = [b for b in at.button if b.label == "Save this operating point into the run"]
    save.click().run()
    assert not at.exception
    block = json.loads((run_dir / "run.json").read_text())["decision"]
    assert block["target"] == pytest.approx(0.15)
    run = load_run(run_dir)
    point, figures = rescore(run.calibration.held_out, run.label_names, 0.15)
    assert block["thresholds"]["pass_below"] == point.pass_below
    assert block["review_rate"] == figures.review_rate
    assert run.record.config.target_escape == pytest.approx(0.15)


def test_predict_shows_the_lot_check_and_decision_figures(app_with_own_run):
    at, _ = app_with_own_run
    at.switch_page("pages/predict.py").run()
    source = at.radio(key="predict_sample_source")
    source.set_value("The held-out part of the session's data").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("0 of 600 parts sent to review by the lot check" in c.value for c in at.caption)
    decision_figures(at)
    table = at.dataframe[0].value
    assert {"decision", "defect_type", "good_distance", "nearest_class"} <= set(table.columns)
