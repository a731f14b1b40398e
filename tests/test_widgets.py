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
    assert "見逃し" in shown["Escape"].proto.help and "defects judged good" in shown["Escape"].proto.help
    assert "過検出" in shown["Overkill"].proto.help
    assert "good parts judged defective" in shown["Overkill"].proto.help


def test_rates_row_adds_the_sample_count_when_asked():
    at = _rates_app(held_out_samples=True)
    assert [metric.label for metric in at.metric][-1] == "Held-out samples"
    assert at.metric[-1].value == "1,234"
