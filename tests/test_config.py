"""The declared training settings and the TrainConfig, CLI options and page inputs made
from them."""

from __future__ import annotations

import math
import typing
from dataclasses import fields
from pathlib import Path

import pytest

from soartlab.config import TRAIN_SETTINGS, TRANSFORM_SETTINGS, TrainConfig, train_setting
from soartlab.errors import SoartLabError
from soartlab.transform import GammaTransform

ROOT = Path(__file__).resolve().parents[1]
NUMBERS = [s for s in (*TRAIN_SETTINGS, *TRANSFORM_SETTINGS) if s.kind is not str]


def _with(setting, value) -> TrainConfig:
    """A TrainConfig with `setting` set to `value` (inside the transform for its settings)."""
    if setting in TRANSFORM_SETTINGS:
        return TrainConfig(transform=GammaTransform(**{setting.name: value}))
    if setting.length is not None:
        value = (value,) * setting.length
    return TrainConfig(**{setting.name: value})


def _called(setting) -> str:
    return f"transform.{setting.name}" if setting in TRANSFORM_SETTINGS else setting.name


def _outside(setting) -> list:
    """Values just outside each end of the setting's interval."""
    low_closed = setting.closed in ("both", "left")
    high_closed = setting.closed in ("both", "right")
    if setting.kind is int:
        return [setting.low - 1, setting.high + 1]
    return [
        math.nextafter(setting.low, -math.inf) if low_closed else setting.low,
        math.nextafter(setting.high, math.inf) if high_closed else setting.high,
    ]


def _inside(setting) -> list:
    """Values at (or, for an open end, just inside) each end of the interval."""
    if setting.kind is int:
        return [setting.low, setting.high]
    low_closed = setting.closed in ("both", "left")
    high_closed = setting.closed in ("both", "right")
    return [
        setting.low if low_closed else math.nextafter(setting.low, math.inf),
        setting.high if high_closed else math.nextafter(setting.high, -math.inf),
    ]


def test_every_setting_is_declared_once_and_is_a_field():
    declared = [s.name for s in TRAIN_SETTINGS]
    assert len(declared) == len(set(declared))
    assert set(declared) | {"transform"} == {f.name for f in fields(TrainConfig)}
    assert [s.name for s in TRANSFORM_SETTINGS] == [f.name for f in fields(GammaTransform)]


def test_defaults_and_types_come_from_the_declarations():
    config = TrainConfig()
    hints = typing.get_type_hints(TrainConfig)
    for setting in TRAIN_SETTINGS:
        assert getattr(config, setting.name) == setting.default, setting.name
        # The annotation names the declared type (alone, in a tuple, or with None).
        assert setting.kind in (hints[setting.name], *typing.get_args(hints[setting.name]))
    assert config.transform == GammaTransform()
    for setting in TRANSFORM_SETTINGS:
        assert setting.default == getattr(GammaTransform(), setting.name)
    config.validate()


def test_the_article_transform_is_stated_in_one_place():
    assert (GammaTransform().scale, GammaTransform().offset, GammaTransform().floor) == (
        0.5,
        -0.25,
        0.0,
    )
    assert [s.default for s in TRANSFORM_SETTINGS] == [0.5, -0.25, 0.0]


@pytest.mark.parametrize("setting", NUMBERS, ids=lambda s: s.name)
def test_each_bound_is_kept(setting):
    for value in _inside(setting):
        _with(setting, value).validate()
    for value in _outside(setting):
        with pytest.raises(SoartLabError) as info:
            _with(setting, value).validate()
        message = str(info.value)
        assert message.startswith(f"{_called(setting)} must be {setting.expected}; got ")
        assert repr(value) in message


@pytest.mark.parametrize("setting", NUMBERS, ids=lambda s: s.name)
def test_non_numbers_are_refused(setting):
    bad = [True, "1", None]
    if setting in TRANSFORM_SETTINGS:
        bad = []  # GammaTransform refuses these itself (tests/test_transform.py)
    elif setting.kind is int:
        bad.append(float(setting.low))
    else:
        bad += [math.nan, math.inf]
    for value in bad:
        with pytest.raises(SoartLabError, match=f"^{setting.name} must be"):
            _with(setting, value).validate()


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("loss", "triplet", "loss must be one of soart3, euclidean; got 'triplet'"),
        ("device", "tpu", "device must be one of auto, cpu, cuda; got 'tpu'"),
        ("good_class", "", "good_class must be a non-empty text or None; got ''"),
        ("good_class", 3, "good_class must be a non-empty text"),
        ("hidden", (512, 256), r"hidden must be 3 values, each an integer in \[1, 100000\]"),
        ("transform", {"scale": 1.0}, "transform must be a GammaTransform; got dict"),
    ],
)
def test_other_bad_settings_are_refused(field, value, message):
    with pytest.raises(SoartLabError, match=message):
        TrainConfig(**{field: value}).validate()


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("auto", "auto"), ("none", "none"), ("", "none"), ("shift, FLIP", "flip,shift")],
)
def test_augment_setting_reads_auto_none_or_a_list(text, canonical):
    from soartlab.augment import parse_augment

    assert parse_augment(text) == canonical
    TrainConfig(augment=text or "none").validate()


@pytest.mark.parametrize("text", ["flip,spin", "flip,flip", "auto,flip"])
def test_bad_augment_setting_names_the_choices(text):
    with pytest.raises(SoartLabError, match="augment must be auto, none, or a comma-separated"):
        TrainConfig(augment=text).validate()


def test_layer_width_bound_is_the_models():
    from soartlab.models import MAX_LAYER_WIDTH

    assert train_setting("hidden").high == train_setting("embedding_dim").high == MAX_LAYER_WIDTH


def test_unknown_setting_lists_the_known_ones():
    with pytest.raises(SoartLabError, match="Unknown training setting 'epoch'.*epochs"):
        train_setting("epoch")


def test_json_form_is_unchanged_and_round_trips():
    config = TrainConfig(good_class="ok", transform=GammaTransform(2.0, -1.0, 0.1))
    values = config.to_dict()
    # The keys run.json files have always had (older runs must keep loading), then the
    # network and model-selection settings added since (a record without them: see
    # record._BEFORE_VALIDATION).
    assert list(values) == [
        "loss",
        "margin",
        "epochs",
        "batch_size",
        "lr",
        "pairs_per_epoch",
        "matched_fraction",
        "seed",
        "device",
        "transform",
        "p_v",
        "p_m",
        "test_size",
        "good_class",
        "knn_k",
        "hidden",
        "embedding_dim",
        "target_escape",  # added with the decision rule; older records take the default
        "channels",
        "arch",
        "augment",
        "val_size",
        "patience",
        "weight_decay",
    ]
    assert values["transform"] == {"scale": 2.0, "offset": -1.0, "floor": 0.1}
    assert values["hidden"] == [512, 256, 256]
    assert TrainConfig.from_dict(values) == config
    with pytest.raises(SoartLabError, match="Unknown training settings: epoch"):
        TrainConfig.from_dict({"epoch": 3})


def test_train_page_inputs_use_the_declared_settings(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from soartlab.ui.settings_form import widget_key

    monkeypatch.setenv("SOARTLAB_HOME", str(tmp_path / "runs"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, at.exception
    on_page = [s for s in TRAIN_SETTINGS if s.label is not None]
    assert {s.name for s in on_page} == {
        "loss",
        "margin",
        "epochs",
        "pairs_per_epoch",
        "batch_size",
        "lr",
        "seed",
        "device",
        "arch",
        "augment",
        "val_size",
        "patience",
        "weight_decay",
    }
    for setting in on_page:
        if setting.choices or setting.name == "augment":
            continue
        widget = at.number_input(key=widget_key(setting))
        assert (widget.label, widget.help) == (setting.label, setting.help)
        assert (widget.min, widget.max, widget.step) == (setting.low, setting.high, setting.step)
        assert widget.value == setting.default
    loss = at.radio(key=widget_key(train_setting("loss")))
    assert loss.options == [
        "SOART3-contrastive (tuned transform)",
        "Euclidean-contrastive (baseline)",
    ]
    assert loss.index == 0  # the declared default, soart3
    device = at.selectbox(key=widget_key(train_setting("device")))
    assert device.options[0] == "auto" and set(device.options) <= {"auto", "cpu", "cuda"}
    arch = at.selectbox(key=widget_key(train_setting("arch")))
    assert arch.value == "auto" and len(arch.options) == 3
    augment = at.multiselect(key=widget_key(train_setting("augment")))
    assert augment.value == ["auto"] and len(augment.options) == 5
    # Not tuned: the transform is decided at Start (tuning.default_transform).
    assert any("Transform: the article's values if the loss learns" in c.value for c in at.caption)


def test_target_escape_default_is_the_decision_rules():
    from soartlab.decision import DEFAULT_TARGET_ESCAPE

    assert train_setting("target_escape").default == DEFAULT_TARGET_ESCAPE
    assert TrainConfig.from_dict({"loss": "soart3"}).target_escape == DEFAULT_TARGET_ESCAPE
