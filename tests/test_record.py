"""The run record (`soartlab.record`): its JSON form round-trips, schema-1 records still
load, and every malformed field is refused with a `CheckpointError` that names it."""

import copy
import json
import random
import re
from dataclasses import replace

import pytest

from soartlab.errors import CheckpointError
from soartlab.record import SCHEMA_VERSION, DataInfo, RunRecord
from soartlab.training import Outcome


@pytest.fixture
def raw(tiny_run):
    """The tiny run's record in its JSON form, as run.json holds it (a fresh copy)."""
    return json.loads(json.dumps(tiny_run.record.to_dict()))


def schema_1(raw):
    """A schema-2 record's JSON form as SOART Lab wrote it before schema_version existed:
    a "format" marker, the transform inside the config and at the top level, the loss
    a second time, no training-data block."""
    raw = copy.deepcopy(raw)
    del raw["schema_version"], raw["data"]
    raw["format"] = "soartlab-run/1"
    raw["config"]["transform"] = raw["transform"]
    raw["loss"] = raw["config"]["loss"]
    return raw


# --- round trips -------------------------------------------------------------------------


def test_record_round_trips(tiny_run):
    record = tiny_run.record
    assert RunRecord.from_dict(record.to_dict()) == record
    # through JSON text too, as run.json and the safetensors header carry it
    assert RunRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_json_form_is_versioned_and_holds_the_transform_once(tiny_run, raw):
    record = tiny_run.record
    assert raw["schema_version"] == SCHEMA_VERSION == 2
    assert "transform" not in raw["config"]
    assert raw["transform"] == record.config.transform.to_dict()
    assert raw["input_shape"] == list(record.input_shape) == raw["model"]["input_shape"]
    assert raw["status"] == Outcome.FINISHED.value
    assert raw["data"] == record.data.to_dict()
    assert isinstance(record.data, DataInfo) and record.data.n_samples == 3000
    assert list(record.data.test_indices) == sorted(record.data.test_indices)


def test_unknown_keys_are_kept_as_written(tiny_run, raw):
    raw["notes"] = {"line": "B", "shift": [1, 2]}
    record = RunRecord.from_dict(raw)
    assert record.extra == {"notes": {"line": "B", "shift": [1, 2]}}
    assert record.to_dict()["notes"] == raw["notes"]
    assert tiny_run.record.extra == {}


def test_schema_1_record_loads_without_a_data_block(tiny_run, raw):
    old = schema_1(raw)
    record = RunRecord.from_dict(old)
    assert record.data is None
    assert record.config == tiny_run.record.config
    assert record.extra == {}  # "format" and the second "loss" are schema 1's, not extras
    assert record == replace(tiny_run.record, data=None)


def test_schema_1_record_with_the_transform_only_at_the_top_loads(tiny_run, raw):
    old = schema_1(raw)
    del old["config"]["transform"]
    assert RunRecord.from_dict(old).config == tiny_run.record.config


def test_schema_1_transform_in_the_config_is_the_one_read(tiny_run, raw):
    old = schema_1(raw)
    old["config"]["transform"] = {"scale": 2.0, "offset": 0.0, "floor": 0.0}
    assert RunRecord.from_dict(old).config.transform.scale == 2.0


def test_schema_1_record_round_trips(raw):
    record = RunRecord.from_dict(schema_1(raw))
    assert RunRecord.from_dict(record.to_dict()) == record


# --- malformed fields --------------------------------------------------------------------


def set_path(*keys_and_value):
    """A mutation setting raw[k1][k2]... to the last argument."""
    *keys, value = keys_and_value

    def mutate(raw):
        target = raw
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return mutate


def short_label_names(raw):
    raw["good_index"] = 5
    raw["label_names"] = raw["label_names"][:3]


def duplicate_label_names(raw):
    raw["label_names"][1] = raw["label_names"][0]


def confusion_wrong_size(raw):
    raw["metrics"]["confusion"] = [row[:-1] for row in raw["metrics"]["confusion"][:-1]]


def index_beyond_the_data(raw):
    raw["data"]["test_indices"][-1] = raw["data"]["n_samples"]


def knn_k_beyond_the_references(raw):
    raw["data"].update(n_samples=700, test_indices=list(range(600)))
    raw["config"]["knn_k"] = 101


def model_disagrees_with_input_shape(raw):
    raw["model"]["input_shape"] = [39, 36]


MALFORMED = [
    ("label_names-null", set_path("label_names", None), "field 'label_names'"),
    ("label_names-too-short", short_label_names, "field 'good_index'.*from 0 to 2"),
    ("label_names-duplicates", duplicate_label_names, "field 'label_names'.*distinct"),
    ("label_names-not-text", set_path("label_names", list(range(8))), "field 'label_names'"),
    ("good_index-99", set_path("good_index", 99), "field 'good_index'"),
    ("good_index-text", set_path("good_index", "0"), "field 'good_index'"),
    ("good_index-true", set_path("good_index", True), "field 'good_index'"),
    ("config-list", set_path("config", [1, 2]), "field 'config'"),
    ("config-unknown-key", set_path("config", "colour", "red"), "field 'config'.*colour"),
    ("distance-text", set_path("distance", "soart3"), "field 'distance'"),
    (
        "distance-unknown",
        set_path("distance", "name", "manhattan2"),
        "field 'distance'.*manhattan2",
    ),
    ("knn_k-text", set_path("config", "knn_k", "one"), "field 'config'.*knn_k"),
    ("accuracy-text", set_path("metrics", "accuracy", "high"), "field 'metrics.accuracy'"),
    ("accuracy-1.5", set_path("metrics", "accuracy", 1.5), "field 'metrics.accuracy'"),
    ("confusion-size", confusion_wrong_size, "field 'metrics.confusion'.*8×8"),
    ("status-done", set_path("status", "done"), "field 'status'"),
    ("test_indices-beyond", index_beyond_the_data, "field 'data'.*field 'test_indices'"),
    ("normalization-std-0", set_path("normalization", "std", 0.0), "field 'normalization'"),
    ("input_shape-disagrees", model_disagrees_with_input_shape, "field 'input_shape'"),
    ("schema_version-future", set_path("schema_version", 3), "field 'schema_version'"),
    ("history-no-epoch", set_path("history", [{"loss": 1.0}]), "field 'history'"),
    ("cpu_seconds-negative", set_path("cpu_seconds", -1.0), "field 'cpu_seconds'"),
    ("escape_rate-negative", set_path("metrics", "escape_rate", -0.1), "'metrics.escape_rate'"),
    ("knn_k-beyond-references", knn_k_beyond_the_references, "'config.knn_k'.*100 training"),
    (
        "normalization-length",
        set_path("normalization", {"mean": [0.0] * 3, "std": [1.0] * 3}),
        r"field 'normalization' \(input shape \[36, 39\]\).*holds 3 means.*1404 inputs",
    ),
    ("normalization-mean-1e300", set_path("normalization", "mean", 1e300), "mean 1e\\+300"),
    ("normalization-std-1e-300", set_path("normalization", "std", 1e-300), "std 1e-300"),
    ("normalization-mean-10**400", set_path("normalization", "mean", 10**400), "normalis"),
    ("history-epochs-repeat", set_path("history", [{"epoch": 1}, {"epoch": 1}]), "'history'"),
    ("history-epoch-0", set_path("history", [{"epoch": 0}]), "field 'history'"),
    (
        "history-accuracy-text",
        set_path("history", [{"epoch": 1, "test_accuracy": "high"}]),
        r"field 'history\[0\].test_accuracy'",
    ),
    (
        "history-loss-text",
        set_path("history", [{"epoch": 1, "loss": "0.1"}]),
        r"field 'history\[0\].loss'",
    ),
    ("baselines-list", set_path("baselines", [0.5, 0.5]), "field 'baselines'"),
    ("baselines-1.5", set_path("baselines", "raw_knn", 1.5), "field 'baselines.raw_knn'"),
    ("baselines-nan", set_path("baselines", "untrained", float("nan")), "'baselines.untrained'"),
    ("baselines-missing", set_path("baselines", {"raw_knn": 0.5}), "'baselines.untrained'"),
    ("baselines-unknown", set_path("baselines", "extra", 0.5), "field 'baselines'"),
]


@pytest.mark.parametrize(("mutate", "names"), [pytest.param(m, n, id=i) for i, m, n in MALFORMED])
def test_malformed_field_is_named(raw, mutate, names):
    mutate(raw)
    with pytest.raises(CheckpointError, match=names) as info:
        RunRecord.from_dict(raw, source="runs/x/run.json")
    assert str(info.value).startswith("runs/x/run.json")


@pytest.mark.parametrize(
    "mean",
    [
        pytest.param(float("inf"), id="inf"),
        pytest.param("x", id="text"),
        pytest.param({}, id="object"),
        pytest.param([1, "x"], id="list-with-text"),
        pytest.param(True, id="boolean"),
    ],
)
def test_malformed_normalisation_values_are_named(raw, mean):
    """Text, objects and booleans in a normalisation are named, never a NumPy error that
    escapes from_dict (and would break RunStore.scan)."""
    raw["normalization"]["mean"] = mean
    with pytest.raises(CheckpointError, match="field 'normalization'"):
        RunRecord.from_dict(raw)


@pytest.mark.parametrize("value", [None, [], "run", 3])
def test_a_record_that_is_not_an_object_is_refused(value):
    with pytest.raises(CheckpointError, match="^the run record must hold a JSON object"):
        RunRecord.from_dict(value)
    with pytest.raises(CheckpointError, match="^runs/x/run.json must hold a JSON object"):
        RunRecord.from_dict(value, source="runs/x/run.json")


# --- random damage -----------------------------------------------------------------------

DAMAGE = [None, "x", -1, 1e308, [], {}, [[[]]], True]


def test_random_damage_is_refused_or_read_never_crashes(raw):
    rng = random.Random(20261130)
    keys = sorted(raw)
    outcomes = {"refused": 0, "read": 0}
    for _ in range(200):
        damaged = copy.deepcopy(raw)
        key, value = rng.choice(keys), copy.deepcopy(rng.choice(DAMAGE))
        damaged[key] = value
        try:
            record = RunRecord.from_dict(damaged)
        except CheckpointError as exc:
            outcomes["refused"] += 1
            assert re.search(r"field '|JSON object", str(exc)), (key, value, exc)
        except Exception as exc:  # the point: nothing else escapes
            pytest.fail(f"{key}={value!r} raised {type(exc).__name__}: {exc}")
        else:
            outcomes["read"] += 1
            assert isinstance(record, RunRecord)
    assert outcomes["refused"] > 50 and outcomes["read"] > 0


def test_a_run_trained_on_a_gpu_opens_on_a_machine_without_one(raw):
    raw["config"]["device"] = "cuda"
    assert RunRecord.from_dict(raw).config.device == "cuda"


@pytest.mark.parametrize(
    "flags, outcome",
    [
        ({}, "finished"),
        ({"stopped": True, "stop_reason": "stopped by the user in epoch 2"}, "stopped"),
        ({"stopped": True, "stop_reason": "loss became NaN in epoch 3"}, "nan_loss"),
    ],
)
def test_schema_1_early_ends_are_read_from_its_stopped_flag(raw, flags, outcome):
    old = schema_1(raw)
    old.update(flags, status="finished")  # schema 1 wrote "finished" for every saved run
    assert RunRecord.from_dict(old).status.value == outcome
    del old["status"]  # a schema-1 weights file's header had no status at all
    assert RunRecord.from_dict(old).status.value == outcome


def test_baselines_are_recorded_and_optional(tiny_run, raw):
    from soartlab.runs import RunInfo

    baselines = tiny_run.record.baselines
    assert baselines is not None and baselines == tiny_run.result.baselines
    assert raw["baselines"] == baselines.to_dict()
    assert 0 <= baselines.raw_knn <= 1 and 0 <= baselines.untrained <= 1
    assert RunInfo.of(tiny_run.run).baselines == baselines  # what the Runs page shows
    del raw["baselines"]  # a run saved before baselines were recorded
    assert RunRecord.from_dict(raw).baselines is None
