"""The interface in Japanese and English: the catalogue covers every message of the code,
translations keep their fields, engine errors are translated at the UI edge, and each page
follows ``?lang=`` and the sidebar switch."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from soartlab.errors import SoartLabError
from soartlab.ui import catalogue, error_messages, i18n
from soartlab.ui.i18n import _, translated

ROOT = Path(__file__).resolve().parents[1]
# page → its title in English
PAGES = {
    "data": "Data",
    "tune": "Tune the distance",
    "train": "Train",
    "explore": "Explore",
    "predict": "Predict",
    "runs": "Runs",
}


def fields(text: str) -> list[tuple[str, str]]:
    return sorted(
        (name, spec or "")
        for _, name, spec, _ in string.Formatter().parse(text)
        if name is not None
    )


# --- the catalogue ------------------------------------------------------------------------


def test_every_message_in_the_code_has_a_japanese_translation():
    """A new ``_("…")`` without a translation fails here: run ``make messages`` and
    translate the new entries of soartlab/locale/ja/LC_MESSAGES/soartlab.po."""
    template = catalogue.extract()
    assert len(template) > 300, "the extraction found the interface's messages"
    missing = catalogue.missing_translations("ja", template)
    assert not missing, f"{len(missing)} messages without a Japanese translation: {missing[:10]}"


def test_extraction_finds_every_kind_of_marked_message():
    ids = {message.id for message in catalogue.extract()}
    assert "Start training" in ids  # _() in a page
    assert "Network to be trained" in ids  # N_() on a module constant
    assert "fraction of pairs" in ids  # translate() in a figure builder (engine)
    assert "Pairs per epoch" in ids  # a training setting's label (soartlab.config)
    assert "fresh pairs drawn every epoch (over all workers)" in ids  # and its help


def test_translations_keep_the_fields_of_their_message():
    for message in catalogue.read_catalogue("ja"):
        if message.id and message.string:
            assert fields(message.string) == fields(message.id), message.id


def test_japanese_uses_the_glossary_words():
    """docs/glossary.md: 見逃し (escape), 過検出 (overkill), 良品, 合格/不合格/要確認."""
    assert translated("Escape", "ja") == "見逃し"
    assert translated("Overkill", "ja") == "過検出"
    assert translated("pass", "ja") == "合格"
    assert translated("fail", "ja") == "不合格"
    assert translated("review", "ja") == "要確認"
    assert "良品" in translated("The good (pass) class", "ja")
    glossary = (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8")
    for word in ("見逃し", "過検出", "良品", "不良", "合格", "要確認", "外観検査", "単位空間"):
        assert word in glossary, word


def test_outside_a_streamlit_run_the_interface_is_english():
    assert i18n.current_language() == "en"
    assert _("Start training") == "Start training"
    assert translated("Start training", "ja") == "学習開始"
    assert translated("a message nobody wrote", "ja") == "a message nobody wrote"


def test_figures_take_their_words_from_the_interface():
    from soartlab.plots import before_after_histograms, confusion_heatmap, training_curves

    ja = i18n.translations("ja").gettext
    figure = confusion_heatmap([[3, 1], [0, 4]], ["good", "scratch"], translate=ja)
    assert figure.layout.xaxis.title.text == "判定クラス"
    assert confusion_heatmap([[1]], ["good"]).layout.xaxis.title.text == "predicted"
    curves = training_curves([{"epoch": 1, "loss": 0.5, "escape_rate": 0.1}], translate=ja)
    assert curves.layout.xaxis.title.text == "エポック"
    assert {trace.name for trace in curves.data} == {"損失", "見逃し率"}
    values = np.linspace(0, 1, 50)
    histograms = before_after_histograms(
        values, values + 1, values, values + 1, floor=0.0, translate=ja
    )
    texts = [a.text for a in histograms.layout.annotations]
    assert "調整前" in texts and "調整後" in texts
    assert any(text.startswith("下限 ") for text in texts), texts


# --- engine errors at the UI edge ---------------------------------------------------------


def engine_error(call) -> str:
    with pytest.raises(SoartLabError) as raised:
        call()
    return str(raised.value)


def csv_error(tmp_path: Path, text: str, **options) -> str:
    from soartlab.data import load_dataset

    path = tmp_path / "lot.csv"
    path.write_text(text, encoding="utf-8")
    return engine_error(lambda: load_dataset(path, **options))


def test_data_loading_errors_are_shown_in_japanese(tmp_path):
    ragged = csv_error(tmp_path, "label,f1,f2\ngood,1,2\nbad,3\n")
    ja = error_messages.translate_message(ragged, "ja")
    assert ja != ragged and "'lot.csv'" in ja and "行目" in ja, (ragged, ja)

    no_label = csv_error(tmp_path, "kind,f1\ngood,1\nbad,2\n")
    ja = error_messages.translate_message(no_label, "ja")
    assert "列がありません" in ja and "'kind'" in ja, (no_label, ja)

    empty = csv_error(tmp_path, "")
    assert error_messages.translate_message(empty, "ja").endswith("見出し行とデータ行が必要です。")


def test_a_refused_training_setting_is_shown_in_japanese():
    from soartlab.transform import GammaTransform
    from soartlab.tuning import loss_view

    rng = np.random.default_rng(0)
    view = loss_view(
        rng.uniform(0, 1, 200), rng.uniform(1, 2, 200), GammaTransform(1, -10, 0), margin=1.0
    )
    assert view.problem
    ja = error_messages.translate_message(view.problem, "ja")
    assert "何も学習できません" in ja and "0 %" in ja, (view.problem, ja)


def test_checkpoint_and_run_errors_are_shown_in_japanese(tmp_path):
    from soartlab.workflow import load_run

    missing = engine_error(lambda: load_run(tmp_path / "no-such-run"))
    ja = error_messages.translate_message(missing, "ja")
    assert ja != missing and "no-such-run" in ja, (missing, ja)


def test_a_stop_reason_is_shown_in_japanese():
    text = "stopped by the user in epoch 2, step 26/40"
    assert (
        error_messages.translate_message(text, "ja")
        == "エポック 2、ステップ 26/40 でユーザーが停止"
    )


def test_an_unknown_engine_message_is_shown_as_it_is():
    text = "Something nobody templated went wrong in 'x.csv'."
    assert error_messages.translate_message(text, "ja") == text
    assert error_messages.translate_message("'a.csv' holds no data rows.", "en") == (
        "'a.csv' holds no data rows."
    )


def test_every_template_is_a_pattern_and_translated():
    for template in error_messages.TEMPLATES:
        example = template.format(**{name: f"<{name}>" for name, _ in fields(template)})
        found = error_messages.match(example)
        assert found is not None and found[0] == template, template
        assert translated(template, "ja") != template, template


# --- the pages ----------------------------------------------------------------------------


@pytest.fixture
def ja_app(tmp_path, monkeypatch) -> AppTest:
    monkeypatch.setenv("SOARTLAB_HOME", str(tmp_path / "runs"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["lang"] = "ja"
    at.run()
    assert not at.exception, at.exception
    return at


def test_lang_ja_in_the_url_shows_japanese_and_stays_across_pages(ja_app):
    assert ja_app.title[0].value == "SOART Lab"
    assert [s.value for s in ja_app.subheader][:2] == ["このセッション", "次の一歩"]
    for page, title in PAGES.items():
        ja_app.switch_page(f"pages/{page}.py").run()
        assert not ja_app.exception, f"{page}: {ja_app.exception}"
        assert ja_app.title[0].value == translated(title, "ja") != title
        assert not ja_app.error, [e.value for e in ja_app.error]


def test_sidebar_switch_changes_the_language_and_the_url(ja_app):
    switch = ja_app.button_group(key=i18n.SWITCH_KEY)
    assert switch.value == "ja"
    switch.set_value("en").run()
    assert not ja_app.exception, ja_app.exception
    assert [s.value for s in ja_app.subheader][:2] == ["This session", "Next step"]
    lang = ja_app.query_params["lang"]
    assert (lang[0] if isinstance(lang, list) else lang) == "en"


def test_without_a_choice_the_interface_is_english(tmp_path, monkeypatch):
    monkeypatch.setenv("SOARTLAB_HOME", str(tmp_path / "runs"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert [s.value for s in at.subheader][:2] == ["This session", "Next step"]


def test_a_bad_upload_is_refused_in_japanese(ja_app):
    from soartlab.ui import state

    ja_app.session_state[state.PENDING_UPLOAD] = (
        "lot7.csv",
        b"label,f1,f2\ngood,1,2\nbad,3\n",
        "label",
        "",
    )
    ja_app.switch_page("pages/data.py").run()
    assert not ja_app.exception, ja_app.exception
    message = ja_app.error[0].value
    assert message.startswith("'lot7.csv' を読み込めませんでした: ") and "行目" in message, message


def test_the_lot_check_s_refusal_reads_in_japanese():
    """A lot on another scale is refused in the engine's English; the page shows it in
    Japanese with the same numbers."""
    import numpy as np

    from soartlab.errors import DataError
    from soartlab.lotcheck import InputStats, check_lot
    from soartlab.ui.error_messages import translate_message

    train = np.random.default_rng(0).uniform(0, 1, (50, 30))
    try:
        check_lot(train * 255, InputStats.fit(train), source="The lot")
    except DataError as exc:
        message = str(exc)
    shown = translate_message(message, "ja")
    assert shown.startswith("このロットは学習データとスケールが違います"), shown
    assert "255" in shown and "another scale" not in shown


def test_flagged_parts_are_named_by_file_or_part_number():
    import numpy as np

    from soartlab.data import from_arrays
    from soartlab.ui.predict import part_names

    lot = from_arrays(np.zeros((3, 4), np.float32), np.zeros(3, int), ["good"])
    assert part_names(lot, [0, 2]) == [None, None]
    lot = lot.add_column("品番", ["A-1", "A-2", "A-3"])
    assert part_names(lot, [0, 2]) == ["A-1", "A-3"]
