"""Property tests of the run record: whatever JSON or bytes stand in run.json, reading it
raises `CheckpointError` or gives a record that round-trips — never another exception.

Three sources of input: random JSON values, a valid record damaged at any depth
(fields replaced, deleted or inserted), and random or bit-flipped bytes as the run.json
of a real run folder (read through `workflow.load_run`, weights and references included).
Each test runs a bounded, derandomised number of examples and checks that both outcomes
were seen, so a strategy that only ever produces refusals is noticed.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soartlab.errors import CheckpointError
from soartlab.record import RunRecord
from soartlab.runs import Run
from soartlab.workflow import load_run

BUDGET = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Values at the edges of what the record's fields allow, beside arbitrary ones.
EDGES = st.sampled_from(
    [0, -1, 1, 2, 99, 2**63, 10**400, 1e300, -1e300, 1e-300, math.nan, math.inf, -math.inf]
    + ["", "high", "soart3", "finished", "nan_loss", True, False, None, [], {}]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | EDGES
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)


def as_json(record: RunRecord) -> str:
    return json.dumps(record.to_dict(), sort_keys=True)


def read(raw, outcomes: Counter) -> None:
    """The property: `RunRecord.from_dict` refuses ``raw`` with a `CheckpointError`, or
    the record it gives is written and read back (through JSON text) unchanged."""
    try:
        record = RunRecord.from_dict(raw)
    except CheckpointError:
        outcomes["refused"] += 1
        return
    again = RunRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert as_json(again) == as_json(record)
    outcomes["read"] += 1


def mutate(data: st.DataObject, raw) -> None:
    """Replace, delete or insert one entry at a random depth of ``raw`` (in place)."""
    container = raw
    while True:
        keys = sorted(container) if isinstance(container, dict) else range(len(container))
        if not keys:
            break
        key = data.draw(st.sampled_from(keys))
        child = container[key]
        if isinstance(child, dict | list) and child and data.draw(st.booleans()):
            container = child
            continue
        break
    operation = data.draw(st.sampled_from(["replace", "delete", "insert"]))
    if operation == "insert" or not keys:
        value = data.draw(JSON_VALUES)
        if isinstance(container, dict):
            container[data.draw(st.text(max_size=12))] = value
        else:
            container.insert(data.draw(st.integers(0, len(container))), value)
    elif operation == "delete":
        del container[key]
    else:
        container[key] = data.draw(JSON_VALUES)


@pytest.fixture(scope="module")
def valid_raw(tiny_run):
    """The tiny run's record as run.json holds it."""
    return json.loads(json.dumps(tiny_run.record.to_dict()))


def test_random_json_is_refused_or_read(valid_raw):
    outcomes = Counter()

    @BUDGET
    @given(JSON_VALUES | st.dictionaries(st.sampled_from(sorted(valid_raw)), JSON_VALUES))
    def check(raw):
        read(raw, outcomes)

    check()
    # random JSON is almost never a whole record: a valid one is read too, as a control
    read(valid_raw, outcomes)
    print(f"random JSON: {dict(outcomes)}")
    assert outcomes["refused"] >= 250 and outcomes["read"] >= 1


def test_a_record_damaged_at_any_depth_is_refused_or_read(valid_raw):
    outcomes = Counter()

    @BUDGET
    @given(st.data(), st.integers(1, 3))
    def check(data, n_mutations):
        raw = copy.deepcopy(valid_raw)
        for _ in range(n_mutations):
            mutate(data, raw)
        read(raw, outcomes)

    check()
    print(f"damaged records: {dict(outcomes)}")
    assert outcomes["refused"] >= 30 and outcomes["read"] >= 30


@pytest.fixture(scope="module")
def run_folder(tiny_run, tmp_path_factory) -> Run:
    """A copy of the tiny run's folder whose run.json the test overwrites."""
    home = tmp_path_factory.mktemp("property-runs")
    return Run(shutil.copytree(tiny_run.run.path, home / tiny_run.run.run_id))


def test_any_bytes_as_run_json_are_refused_or_loaded(run_folder, valid_raw):
    valid = json.dumps(valid_raw).encode()
    outcomes = Counter()

    def flipped(data: st.DataObject) -> bytes:
        damaged = bytearray(valid)
        for _ in range(data.draw(st.integers(1, 4))):
            damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
        return bytes(damaged)

    @settings(BUDGET, max_examples=300)
    @given(st.data(), st.sampled_from(["random", "flipped", "mutated"]))
    def check(data, kind):
        if kind == "random":
            content = data.draw(st.binary(max_size=2000))
        elif kind == "flipped":
            content = flipped(data)
        else:
            raw = copy.deepcopy(valid_raw)
            mutate(data, raw)
            content = json.dumps(raw).encode()
        run_folder.record_path.write_bytes(content)
        try:
            loaded = load_run(run_folder)
        except CheckpointError:
            outcomes[f"{kind} refused"] += 1
            return
        assert loaded.references is not None and loaded.model is not None
        outcomes[f"{kind} loaded"] += 1

    check()
    print(f"bytes as run.json: {dict(sorted(outcomes.items()))}")
    assert outcomes["random refused"] and outcomes["flipped refused"]
    assert outcomes["mutated loaded"] >= 10
