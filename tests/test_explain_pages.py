"""The Explore and Predict pages explain parts: nearest references, heatmaps as PNG with a
download, and the RT baseline beside the trained run (AppTest)."""

from __future__ import annotations

from test_app_pages import app_with_run, open_page, trained_run  # noqa: F401 (fixtures)

from soartlab.ui.explain_view import MAX_EXPLAINED


def images(at) -> list:
    return at.get("image")


def test_explore_shows_heatmaps_of_a_cell_and_the_rt_baseline(app_with_run):  # noqa: F811
    at = open_page(app_with_run, "pages/explore.py")
    assert not at.error, [e.value for e in at.error]
    tables = [t.value for t in at.dataframe]
    [rt] = [t for t in tables if "method" in t.columns]
    assert list(rt["method"]) == ["RT method (no training)", "This run (nearest neighbour)"]
    assert ((rt["escape"] >= 0) & (rt["escape"] <= 1)).all()
    cell = at.selectbox(key="explore_cell").value
    assert cell is not None
    shown = images(at)
    assert 1 <= len(shown) <= MAX_EXPLAINED
    assert any("nearest good: training row" in m.value for m in at.markdown)
    pngs = [b for b in at.get("download_button") if b.proto.label == "Download PNG"]
    assert len(pngs) == len(shown)


def test_predict_explains_failed_parts_with_a_png_each(app_with_run):  # noqa: F811
    at = open_page(app_with_run, "pages/predict.py")
    at.radio(key="predict_sample_source").set_value("The held-out part of the session's data").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("failed and reviewed parts" in h.value for h in at.subheader)
    shown = images(at)
    assert 1 <= len(shown) <= MAX_EXPLAINED
    pngs = [b for b in at.get("download_button") if b.proto.label == "Download PNG"]
    assert len(pngs) == len(shown)
    assert any("first 24 of" in c.value for c in at.caption)
