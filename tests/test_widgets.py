"""The one row of held-out rates every page shows (AppTest, no browser)."""

from streamlit.testing.v1 import AppTest


def _rates_app(held_out_samples: bool) -> AppTest:
    def script(held_out_samples: bool) -> None:
        from soartlab.ui.widgets import rates_row

        metrics = {"accuracy": 0.9, "escape_rate": 0.05, "overkill_rate": 0.125, "n_samples": 1234}
        rates_row(metrics, held_out_samples=held_out_samples)

    at = AppTest.from_function(script, kwargs={"held_out_samples": held_out_samples})
    at.run()
    assert not at.exception, at.exception
    return at


def test_rates_row_shows_the_three_rates_with_the_japanese_terms():
    at = _rates_app(held_out_samples=False)
    shown = {metric.label: metric for metric in at.metric}
    assert {label: metric.value for label, metric in shown.items()} == {
        "Accuracy": "90.0%",
        "Escape": "5.0%",
        "Overkill": "12.5%",
    }
    assert (
        "見逃し" in shown["Escape"].proto.help
        and "defects judged good" in shown["Escape"].proto.help
    )
    assert "過検出" in shown["Overkill"].proto.help
    assert "good parts judged defective" in shown["Overkill"].proto.help


def test_rates_row_adds_the_sample_count_when_asked():
    at = _rates_app(held_out_samples=True)
    assert [metric.label for metric in at.metric][-1] == "Held-out samples"
    assert at.metric[-1].value == "1,234"


def test_runs_compare_shows_the_same_row_for_each_run(tmp_path):
    def script(folder: str) -> None:
        from pathlib import Path
        from types import SimpleNamespace

        from soartlab.ui import runs_view

        infos = [
            SimpleNamespace(
                run_id=f"run{i}",
                label="",
                loss="contrastive",
                path=Path(folder) / f"run{i}",
                history=(),  # no epochs: no curves, still the rates
                metrics={"accuracy": 0.5 + i / 10, "escape_rate": 0.1, "overkill_rate": 0.2},
                baselines=None,  # a run saved before baselines were recorded
            )
            for i in range(3)
        ]
        runs_view.compare(infos)

    at = AppTest.from_function(script, kwargs={"folder": str(tmp_path)}, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    labels = [metric.label for metric in at.metric]
    assert labels == ["Accuracy", "Escape", "Overkill"] * 3
    assert [metric.value for metric in at.metric if metric.label == "Accuracy"] == [
        "50.0%",
        "60.0%",
        "70.0%",
    ]


def test_rates_row_shows_what_training_added_over_the_baselines():
    def script() -> None:
        from soartlab.training import Baselines
        from soartlab.ui.widgets import rates_row

        metrics = {"accuracy": 0.9, "escape_rate": 0.05, "overkill_rate": 0.125}
        rates_row(metrics, baselines=Baselines(raw_knn=0.8, untrained=0.855))

    at = AppTest.from_function(script)
    at.run()
    assert not at.exception, at.exception
    shown = {metric.label: metric for metric in at.metric}
    assert shown["Accuracy"].delta == "+4.5 pts over the untrained network"
    assert shown["Untrained network"].value == "85.5%"
    assert shown["kNN on raw features"].value == "80.0%"


def test_run_times_are_shown_in_the_browsers_time_zone(monkeypatch):
    from soartlab.ui import runs_view

    class Context:
        timezone = "Asia/Tokyo"

    monkeypatch.setattr(runs_view.st, "context", Context())
    assert runs_view.local_time("2026-11-30T15:56:09+00:00") == "2026-12-01 00:56"
    Context.timezone = None  # the browser did not say: the time as stored
    assert runs_view.local_time("2026-11-30T15:56:09+00:00") == "2026-11-30 15:56"
    Context.timezone = "Not/AZone"
    assert runs_view.local_time("2026-11-30T15:56:09+00:00") == "2026-11-30T15:56:09+00:00"
    assert runs_view.local_time("yesterday") == "yesterday"
