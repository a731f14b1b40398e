"""Figure builders, checked as plain ``go.Figure`` objects."""

import json
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

from soartlab import plots
from soartlab.errors import SoartLabError
from soartlab.plots.histograms import _histogram_traces

LABELS = ["good", "scratch", "dent"]


def _annotation_texts(fig: go.Figure) -> list[str]:
    return [annotation.text for annotation in fig.layout.annotations]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# --- helpers ---------------------------------------------------------------------------


def test_shared_edges_cover_all_arrays_and_skip_non_finite():
    edges = plots.shared_edges([0.0, 1.0, np.nan], [3.0, np.inf], bins=4)
    np.testing.assert_allclose(edges, [0.0, 0.75, 1.5, 2.25, 3.0])


def test_shared_edges_degenerate_inputs():
    np.testing.assert_allclose(plots.shared_edges([2.0, 2.0], bins=2), [1.5, 2.0, 2.5])
    np.testing.assert_allclose(plots.shared_edges([], bins=2), [0.0, 0.5, 1.0])
    with pytest.raises(SoartLabError, match="bins"):
        plots.shared_edges([1.0], bins=0)


def test_histogram_bins_match_numpy(rng):
    values = rng.normal(size=500)
    edges = plots.shared_edges(values, bins=13)
    np.testing.assert_array_equal(
        plots.histogram_bins(values, edges), np.histogram(values, bins=edges)[0]
    )


# --- pair_histogram --------------------------------------------------------------------


def test_pair_histogram_bars_are_fractions_on_shared_edges(rng):
    matched = rng.normal(0.0, 1.0, 300)
    unmatched = rng.normal(2.0, 1.0, 1000)
    fig = plots.pair_histogram(matched, unmatched, bins=20, title="t")
    assert isinstance(fig, go.Figure)
    assert [type(trace) for trace in fig.data] == [go.Bar, go.Bar]
    assert [trace.name for trace in fig.data] == ["Matched", "Unmatched"]
    assert [trace.marker.color for trace in fig.data] == ["#1f77b4", "#d62728"]
    assert fig.layout.barmode == "overlay"
    edges = np.histogram_bin_edges(np.concatenate([matched, unmatched]), bins=20)
    for trace, values in zip(fig.data, (matched, unmatched), strict=True):
        assert 0.4 <= trace.opacity <= 0.7
        y = np.asarray(trace.y)
        assert y.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(y, np.histogram(values, bins=edges)[0] / len(values))
        np.testing.assert_allclose(trace.x, (edges[:-1] + edges[1:]) / 2)
        assert trace.width == pytest.approx(edges[1] - edges[0])


def test_pair_histogram_threshold_line():
    fig = plots.pair_histogram([0.1, 0.2], [0.8, 0.9], threshold=0.5)
    lines = [shape for shape in fig.layout.shapes if shape.type == "line"]
    assert len(lines) == 1 and lines[0].x0 == 0.5 == lines[0].x1
    assert any("threshold" in text for text in _annotation_texts(fig))


def test_pair_histogram_payload_stays_small_at_100k(rng):
    fig = plots.pair_histogram(rng.normal(0, 1, 100_000), rng.normal(2, 1, 100_000), threshold=1)
    assert len(fig.to_json()) < 20_000


def test_pair_histogram_empty_inputs_give_annotation():
    fig = plots.pair_histogram([], np.array([]))
    assert len(fig.data) == 0
    assert "no pairs" in _annotation_texts(fig)


def test_pair_histogram_one_side_empty_still_draws():
    fig = plots.pair_histogram([0.1, 0.2, 0.3], [])
    assert np.asarray(fig.data[0].y).sum() == pytest.approx(1.0)
    assert np.asarray(fig.data[1].y).sum() == 0
    assert "no unmatched pairs" in _annotation_texts(fig)


def test_before_after_histograms_two_panels_legend_once(rng):
    fig = plots.before_after_histograms(
        rng.random(200),
        rng.random(200) + 0.5,
        rng.random(200),
        rng.random(200) + 1.0,
        bins=10,
        threshold=0.9,
    )
    assert [trace.name for trace in fig.data] == ["Matched", "Unmatched"] * 2
    assert [trace.showlegend for trace in fig.data] == [True, True, False, False]
    assert [trace.xaxis for trace in fig.data] == ["x", "x", "x2", "x2"]
    assert [trace.marker.color for trace in fig.data[2:]] == ["#1f77b4", "#d62728"]
    texts = _annotation_texts(fig)
    assert "before tune" in texts and "after tune" in texts
    assert all(np.asarray(trace.y).sum() == pytest.approx(1.0) for trace in fig.data)
    (line,) = fig.layout.shapes
    assert line.xref == "x2" and line.x0 == 0.9


def test_before_after_histograms_floor_and_margin_lines_on_the_after_panel():
    fig = plots.before_after_histograms([0.1], [0.9], [0.2], [0.8], floor=0.0, margin=1.0)
    assert [(s.xref, s.x0) for s in fig.layout.shapes] == [("x2", 0.0), ("x2", 1.0)]
    texts = _annotation_texts(fig)
    assert "floor 0" in texts and "margin 1" in texts
    assert not any(t.startswith("threshold") for t in texts)


def test_before_after_histograms_empty_panel():
    fig = plots.before_after_histograms([], [], [0.1], [0.9])
    assert len(fig.data) == 2
    assert "no pairs" in _annotation_texts(fig)


def _validated_before_after(raw_m, raw_u, tuned_m, tuned_u, *, bins=40, **lines):
    """The before/after figure built through Plotly's validated API (make_subplots,
    go.Bar, add_vline): the look ``before_after_histograms`` must keep. ``lines``:
    threshold, floor and margin positions (None: no line)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("before tune", "after tune"))
    for col, (matched, unmatched) in enumerate(((raw_m, raw_u), (tuned_m, tuned_u)), start=1):
        edges = plots.shared_edges(matched, unmatched, bins=bins)
        for trace in _histogram_traces(
            np.asarray(matched), np.asarray(unmatched), edges, showlegend=col == 1
        ):
            fig.add_trace(go.Bar(trace), row=1, col=col)
        fig.update_xaxes(title_text="distance", row=1, col=col)
    fig.update_yaxes(title_text="fraction of pairs", tickformat=".0%", row=1, col=1)
    fig.update_yaxes(tickformat=".0%", row=1, col=2)
    styles = {
        "threshold": ("dash", "black", "top right"),
        "floor": ("dot", "#7f7f7f", "top left"),
        "margin": ("dashdot", "#ff7f0e", "bottom right"),
    }
    for name, (dash, color, position) in styles.items():
        x = lines.get(name)
        if x is not None:
            fig.add_vline(
                x=x,
                line_dash=dash,
                line_color=color,
                annotation_text=f"{name} {x:.3g}",
                annotation_position=position,
                row=1,
                col=2,
            )
    fig.update_layout(
        barmode="overlay",
        bargap=0,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.08, "x": 0},
    )
    return fig


@pytest.mark.parametrize(
    "lines",
    [{}, {"threshold": 0.9}, {"floor": 0.1, "margin": 1.2}, {"threshold": 0.9, "margin": 1.0}],
)
def test_before_after_histograms_match_the_validated_figure(rng, lines):
    arrays = (rng.random(300), rng.random(200) + 0.5, rng.random(300), rng.random(200) + 1)
    fast = plots.before_after_histograms(*arrays, bins=12, **lines)
    reference = _validated_before_after(*arrays, bins=12, **lines)
    assert json.loads(fast.to_json()) == json.loads(reference.to_json())
    # The unvalidated figure is a valid one: Plotly's validation accepts it unchanged.
    assert go.Figure(fast.to_dict()).to_dict() == fast.to_dict()


def test_pair_histogram_matches_the_validated_figure(rng):
    matched = rng.random(100)
    fast = plots.pair_histogram(matched, [], bins=8, title="t", threshold=0.4, x_title="d")
    edges = plots.shared_edges(matched, bins=8)
    reference = go.Figure([go.Bar(t) for t in _histogram_traces(matched, np.array([]), edges)])
    reference.update_layout(
        title="t",
        barmode="overlay",
        bargap=0,
        xaxis_title="d",
        yaxis_title="fraction of pairs",
        yaxis_tickformat=".0%",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    )
    reference.add_annotation(
        text="no unmatched pairs", x=0.5, y=0.95, xref="paper", yref="paper", showarrow=False
    )
    reference.add_vline(
        x=0.4,
        line_dash="dash",
        line_color="black",
        annotation_text="threshold 0.4",
        annotation_position="top right",
    )
    assert json.loads(fast.to_json()) == json.loads(reference.to_json())


def test_histogram_layout_cache_is_not_changed_by_figures():
    first = plots.before_after_histograms([0.1], [0.9], [0.2], [0.8], threshold=0.5)
    first.update_layout(height=380, title="changed")
    first.layout.annotations[0].text = "changed"
    second = plots.before_after_histograms([0.1], [0.9], [0.2], [0.8])
    assert second.layout.height is None and second.layout.title.text is None
    assert [a.text for a in second.layout.annotations] == ["before tune", "after tune"]
    assert not second.layout.shapes


# --- pca_scatter -----------------------------------------------------------------------


def test_pca_scatter_2d_one_scattergl_per_class_with_hover(rng):
    labels = np.array([0, 1, 2, 0, 1, 2])
    predictions = np.array([0, 0, 2, 0, 1, 1])
    fig = plots.pca_scatter(
        rng.random((6, 2)),
        labels,
        LABELS,
        predictions=predictions,
        indices=[10, 11, 12, 13, 14, 15],
    )
    assert all(isinstance(trace, go.Scattergl) for trace in fig.data)
    assert [trace.name for trace in fig.data] == LABELS
    good, scratch, dent = fig.data
    assert good.marker.color == plots.GOOD_COLOR
    assert len({good.marker.color, scratch.marker.color, dent.marker.color}) == 3
    assert "label scratch" in scratch.hovertemplate
    assert "prediction %{customdata[1]}" in scratch.hovertemplate
    # scratch samples are indices 11 (predicted good) and 14 (predicted scratch)
    assert scratch.customdata.tolist() == [["11", "good"], ["14", "scratch"]]
    assert list(scratch.marker.symbol) == ["x", "diamond"]


def test_pca_scatter_3d(rng):
    fig = plots.pca_scatter(rng.random((9, 3)), [0, 1, 2] * 3, LABELS, good_index=1)
    assert all(isinstance(trace, go.Scatter3d) for trace in fig.data)
    assert fig.data[1].marker.color == plots.GOOD_COLOR
    assert "label dent" in fig.data[2].hovertemplate


def test_pca_scatter_empty_and_bad_shape():
    assert "no points" in _annotation_texts(plots.pca_scatter(np.zeros((0, 2)), [], LABELS))
    with pytest.raises(SoartLabError, match="points"):
        plots.pca_scatter(np.zeros((4, 5)), [0, 0, 0, 0], LABELS)


# --- confusion_heatmap -----------------------------------------------------------------


def test_confusion_heatmap_text_counts_and_row_percent():
    confusion = [[12, 3, 0], [1, 4, 0], [0, 0, 0]]
    fig = plots.confusion_heatmap(confusion, LABELS)
    heatmap, cells = fig.data
    assert isinstance(heatmap, go.Heatmap)
    assert heatmap.text[0][0] == "12<br>(80.0%)"
    assert heatmap.text[1][0] == "1<br>(20.0%)"
    assert heatmap.text[2][2] == "0<br>(0.0%)"
    np.testing.assert_allclose(heatmap.z[0], [0.8, 0.2, 0.0])
    assert list(heatmap.x) == LABELS and list(heatmap.y) == LABELS
    assert fig.layout.yaxis.autorange == "reversed"
    assert heatmap.customdata[0][1].tolist() == [0, 1]
    # A browser selects points, not heatmap cells: one invisible marker per cell takes the
    # click, at (predicted, true).
    assert isinstance(cells, go.Scatter) and cells.marker.opacity == 0.0
    assert len(cells.x) == 9 and (cells.x[1], cells.y[1]) == (LABELS[1], LABELS[0])
    assert list(cells.customdata[1]) == [0, 1] and cells.text[1] == "3<br>(20.0%)"


def test_confusion_heatmap_empty_and_mismatch():
    assert "no predictions" in _annotation_texts(plots.confusion_heatmap(np.zeros((0, 0)), []))
    with pytest.raises(SoartLabError, match="label_names"):
        plots.confusion_heatmap([[1, 2], [3, 4]], LABELS)


# --- training_curves -------------------------------------------------------------------


def test_training_curves_loss_left_rates_right():
    history = [
        {"epoch": 1, "loss": 1.0, "test_accuracy": 0.6, "escape_rate": 0.2},
        {"epoch": 2, "loss": 0.5, "test_accuracy": 0.8, "escape_rate": 0.1, "overkill_rate": 0.05},
    ]
    fig = plots.training_curves(history)
    by_name = {trace.name: trace for trace in fig.data}
    assert set(by_name) == {"loss", "test accuracy", "escape rate", "overkill rate"}
    assert by_name["loss"].yaxis == "y"
    assert {by_name[name].yaxis for name in ("test accuracy", "escape rate")} == {"y2"}
    assert list(by_name["loss"].x) == [1, 2]
    assert list(by_name["overkill rate"].y) == [None, 0.05]


def test_training_curves_show_the_validation_rates():
    history = [
        {"epoch": 1, "loss": 0.3, "val_accuracy": 0.5, "val_escape_rate": 0.3},
        {
            "epoch": 2,
            "loss": 0.2,
            "val_accuracy": 0.7,
            "val_escape_rate": 0.2,
            "val_overkill_rate": 0.1,
        },
    ]
    by_name = {trace.name: trace for trace in plots.training_curves(history).data}
    assert set(by_name) == {"loss", "val accuracy", "val escape rate", "val overkill rate"}
    assert list(by_name["val accuracy"].y) == [0.5, 0.7]
    assert by_name["val overkill rate"].yaxis == "y2"


def test_training_curves_empty():
    fig = plots.training_curves([])
    assert len(fig.data) == 0
    assert "no epochs yet" in _annotation_texts(fig)


# --- sample_grid -----------------------------------------------------------------------


def test_sample_grid_heatmaps_upright_without_axes(rng):
    images = rng.random((10, 6, 5)).astype(np.float32)
    titles = [f"#{i}" for i in range(10)]
    fig = plots.sample_grid(images, titles, columns=4)
    assert len(fig.data) == 10
    assert all(isinstance(trace, go.Heatmap) for trace in fig.data)
    assert fig.data[0].colorscale[0][1] in ("rgb(0,0,0)", "rgb(0, 0, 0)")
    np.testing.assert_allclose(fig.data[3].z, images[3])
    assert fig.data[4].xaxis == "x5"
    assert fig.layout.yaxis.autorange == "reversed" and fig.layout.yaxis.visible is False
    assert fig.layout.yaxis5.scaleanchor == "x5"
    assert [text for text in _annotation_texts(fig)] == titles


def test_sample_grid_caps_count_and_thumbnails_large_images(rng):
    fig = plots.sample_grid(rng.random((plots.MAX_GRID_IMAGES + 6, 4, 4)))
    assert len(fig.data) == plots.MAX_GRID_IMAGES
    big = plots.sample_grid(np.ones((1, 256, 130)))
    assert max(np.asarray(big.data[0].z).shape) <= plots.MAX_THUMBNAIL_SIDE
    np.testing.assert_allclose(big.data[0].z, 1.0)


def test_sample_grid_empty():
    assert "no samples" in _annotation_texts(plots.sample_grid(np.zeros((0, 4, 4))))


# --- class_counts_bar ------------------------------------------------------------------


def test_class_counts_bar_colours_good_green():
    fig = plots.class_counts_bar(LABELS, [50, 7, 3], good_index=0)
    (bar,) = fig.data
    assert isinstance(bar, go.Bar)
    assert list(bar.y) == [50, 7, 3]
    assert bar.marker.color[0] == plots.GOOD_COLOR
    assert plots.GOOD_COLOR not in bar.marker.color[1:]


def test_plots_does_not_import_streamlit():
    modules = sorted(Path(plots.__file__).parent.glob("*.py"))
    assert len(modules) > 1
    for module in modules:
        source = module.read_text(encoding="utf-8")
        assert "import streamlit" not in source and "from streamlit" not in source, module


@pytest.mark.parametrize(
    ("build", "parameter"),
    [
        (lambda: plots.pca_scatter(np.zeros((3, 2)), [0, 1], LABELS), "labels"),
        (
            lambda: plots.pca_scatter(np.zeros((3, 2)), [0, 1, 2], LABELS, predictions=[0]),
            "predictions",
        ),
        (lambda: plots.pca_scatter(np.zeros((3, 2)), [0, 1, 2], LABELS, indices=[0]), "indices"),
        (lambda: plots.class_counts_bar(LABELS, [1, 2]), "counts"),
        (lambda: plots.sample_grid(np.zeros((2, 4))), "images"),
        (lambda: plots.sample_grid(np.zeros((2, 4, 4)), columns=0), "columns"),
        (lambda: plots.sample_grid(np.zeros((2, 4, 4)), ["only one"]), "titles"),
    ],
)
def test_bad_arguments_raise_the_engine_error_naming_the_parameter(build, parameter):
    # The app's error handler shows SoartLabError as a message; anything else is a traceback.
    with pytest.raises(SoartLabError, match=f"^{parameter} must"):
        build()


def test_escape_overkill_curve_marks_the_operating_point():
    import plotly.graph_objects as go

    from soartlab.plots import escape_overkill_curve

    fig = escape_overkill_curve([0.0, 0.1, 1.0], [1.0, 0.2, 0.0], point=(0.01, 0.05))
    assert isinstance(fig, go.Figure)
    curve, point = fig.data[0], fig.data[1]
    assert list(curve.x) == [0.0, 10.0, 100.0] and list(curve.y) == [100.0, 20.0, 0.0]
    assert list(point.x) == [1.0] and list(point.y) == [5.0]
    assert point.name == "operating point"
    assert len(escape_overkill_curve([0.0], [0.0]).data) == 2  # no point: curve, perfect
