"""Property tests of the readers: whatever the file holds, ``load_dataset`` either raises a
DataError or returns a valid dataset (finite float32 samples, every label one of the class
names, an input shape that matches the values). Any other exception fails the test.

Random bytes, valid files with random damage, random tables (CSV with and without a
byte-order mark, Parquet), random zips and random .npz arrays. Derandomised with bounded
budgets, so every run tries the same examples.
"""

from __future__ import annotations

import base64
import io
import math
import string
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from soartlab import data
from soartlab.errors import DataError
from soartlab.io import SUPPORTED_SUFFIXES

BUDGET = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

SMALL = data.Limits(max_file_bytes=1 << 20, max_rows=500, max_total_pixels=100_000)
"""Small caps, so that a random file cannot make a test slow."""


def assert_valid(ds) -> None:
    """What every dataset load_dataset returns must be."""
    X, y = data.to_arrays(ds)
    names = data.label_names(ds)
    assert X.dtype == np.float32 and X.ndim == 2 and len(X) >= 1 and X.shape[1] >= 1
    assert np.isfinite(X).all()
    assert y.dtype == np.int64 and y.shape == (len(X),)
    assert names and len(set(names)) == len(names) and all(isinstance(n, str) for n in names)
    assert ((y >= 0) & (y < len(names))).all()
    assert math.prod(data.input_shape(ds)) == X.shape[1]


def load_or_refuse(path: Path, **options):
    """The dataset, or None when load_dataset refused the file with a DataError that names
    it; any other exception propagates and fails the test."""
    try:
        ds = data.load_dataset(path, limits=SMALL, image_size=(6, 7), **options)
    except DataError as exc:
        assert str(exc).strip(), "an empty message"
        event("refused (DataError)")
        return None
    assert_valid(ds)
    event("loaded")
    return ds


def png(height: int, width: int, value: int = 100) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((height, width), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _valid_files() -> dict[str, bytes]:
    """One small valid file per format, by file name: the seeds random damage starts from."""
    frame = pd.DataFrame({"label": ["good", "dent", "good", "dent"], "a": [1.0, 2, 3, 4]})
    frame["b"] = [0.5, 0.25, 1e-3, -2.0]
    parquet = io.BytesIO()
    frame.to_parquet(parquet)
    npz = io.BytesIO()
    np.savez(npz, X=np.arange(12.0).reshape(4, 3), y=np.array([0, 1, 0, 1]))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for k, folder in enumerate(["good", "dent", "good", "dent"]):
            zf.writestr(f"lot/{folder}/{k}.png", png(5, 4, 40 * k))
    hub = io.BytesIO()
    images = pa.array([{"bytes": png(5, 4, 9 * k), "path": f"{k}.png"} for k in range(4)])
    pq.write_table(pa.table({"image": images, "label": [0, 1, 0, 1]}), hub)
    return {
        "lot.csv": frame.to_csv(index=False).encode(),
        "lot.tsv": frame.to_csv(index=False, sep="\t").encode(),
        "lot.parquet": parquet.getvalue(),
        "lot.npz": npz.getvalue(),
        "lot.zip": archive.getvalue(),
        "images.parquet": hub.getvalue(),
    }


VALID = _valid_files()


def test_the_seeds_are_valid(tmp_path):
    for key, raw in VALID.items():
        (tmp_path / key).write_bytes(raw)
        assert_valid(data.load_dataset(tmp_path / key, limits=SMALL, image_size=(6, 7)))


# --- bytes ----------------------------------------------------------------------------------


@BUDGET
@given(
    raw=st.binary(max_size=600),
    suffix=st.sampled_from(SUPPORTED_SUFFIXES),
    require_labels=st.booleans(),
)
def test_random_bytes(tmp_path, raw, suffix, require_labels):
    path = tmp_path / f"lot{suffix}"
    path.write_bytes(raw)
    assert load_or_refuse(path, require_labels=require_labels) is None or suffix in {
        ".csv",
        ".tsv",
    }


@st.composite
def damaged(draw) -> tuple[str, bytes]:
    """A valid file with random bytes overwritten, inserted or cut off."""
    key = draw(st.sampled_from(sorted(VALID)))
    raw = bytearray(VALID[key])
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(raw) - 1))
        action = draw(st.sampled_from(["set", "insert", "delete"]))
        chunk = draw(st.binary(min_size=1, max_size=8))
        if action == "set":
            raw[at : at + len(chunk)] = chunk
        elif action == "insert":
            raw[at:at] = chunk
        else:
            del raw[at : at + len(chunk)]
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]
    return key, bytes(raw)


@settings(BUDGET, max_examples=300)
@given(file=damaged(), require_labels=st.booleans())
def test_damaged_valid_files(tmp_path, file, require_labels):
    key, raw = file
    (tmp_path / key).write_bytes(raw)
    load_or_refuse(tmp_path / key, require_labels=require_labels)


# --- tables ---------------------------------------------------------------------------------

ODD_CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.text(max_size=6),
    st.sampled_from(["", " ", "NA", "N/A", "null", "nan", "-inf", "1e400", "1,5", '"', "\r"]),
    st.none(),
)
COLUMNS = {
    # what a column holds: most are clean, so that many tables load and get checked
    "numbers": st.floats(-1e6, 1e6, allow_nan=False),
    "integers": st.integers(-(2**70), 2**70),
    "labels": st.one_of(st.text(min_size=1, max_size=6), st.integers(-5, 5), st.just("NA")),
    "anything": ODD_CELLS,
}
NAMES = st.one_of(
    st.sampled_from(["Label", "features", "image", "px_0_0", "px_0_1", "px_1_0", "", "a", "b"]),
    st.text(max_size=5),
)


@st.composite
def tables(draw) -> pd.DataFrame:
    """A DataFrame of 0–6 rows and 1–5 columns of anything: odd names, text, numbers of any
    size, NaN, inf, missing cells; usually with a 'label' column first and unique names."""
    n_rows = draw(st.integers(0, 6))
    names = draw(st.lists(NAMES, min_size=1, max_size=5, unique=draw(st.integers(0, 5)) > 0))
    if draw(st.integers(0, 3)):
        names[0] = "label"
    columns = {}
    for k in range(len(names)):
        kind = "labels" if names[k] == "label" else draw(st.sampled_from(sorted(COLUMNS)))
        if draw(st.integers(0, 5)) == 0:
            kind = "anything"
        columns[k] = draw(st.lists(COLUMNS[kind], min_size=n_rows, max_size=n_rows))
    frame = pd.DataFrame(columns, dtype=object)
    frame.columns = names
    return frame


LINE_ENDS = st.sampled_from(["\n", "\r\n", "\r"])  # Unix, Windows, Excel for Mac


@BUDGET
@given(
    frame=tables(),
    how=st.sampled_from(["utf-8", "utf-8-sig", "tsv"]),
    end=LINE_ENDS,
    labels=st.booleans(),
)
def test_random_tables_as_csv(tmp_path, frame, how, end, labels):
    path = tmp_path / ("lot.tsv" if how == "tsv" else "lot.csv")
    encoding = "utf-8-sig" if how == "utf-8-sig" else "utf-8"
    sep = "\t" if how == "tsv" else ","
    try:
        frame.to_csv(path, index=False, sep=sep, encoding=encoding, lineterminator=end)
    except UnicodeEncodeError:  # a lone surrogate: not text a CSV can hold
        return
    load_or_refuse(path, require_labels=labels)


def _arrow_column(values: list) -> pa.Array:
    """A column as Arrow infers it; as text when its cells mix types Arrow cannot join."""
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowException, OverflowError):
        return pa.array([None if v is None else str(v) for v in values])


@BUDGET
@given(frame=tables(), labels=st.booleans())
def test_random_tables_as_parquet(tmp_path, frame, labels):
    columns = [_arrow_column(frame.iloc[:, k].tolist()) for k in range(frame.shape[1])]
    table = pa.Table.from_arrays(columns, names=[str(c) for c in frame.columns])
    pq.write_table(table, tmp_path / "lot.parquet")
    load_or_refuse(tmp_path / "lot.parquet", require_labels=labels)


IMAGE_BYTES = {
    # what the 'bytes' field of a hub image column may hold, one kind per column
    "png": st.builds(png, st.integers(1, 40), st.integers(1, 40), st.integers(0, 255)),
    "damaged png": st.builds(lambda cut: png(6, 7)[:cut], st.integers(0, 90)),
    "bytes": st.binary(max_size=40),
    "base64 text": st.builds(lambda h: base64.b64encode(png(h, 3)).decode(), st.integers(1, 9)),
    "integers": st.integers(-5, 300),
    "lists": st.lists(st.integers(0, 255), max_size=4),
    "nothing": st.none(),
}


@BUDGET
@given(
    kind=st.sampled_from(sorted(IMAGE_BYTES)),
    data_=st.data(),
    n_rows=st.integers(1, 6),
    with_path=st.booleans(),
)
def test_random_image_parquet(tmp_path, kind, data_, n_rows, with_path):
    blobs = data_.draw(st.lists(IMAGE_BYTES[kind], min_size=n_rows, max_size=n_rows))
    rows = [
        {"bytes": b, **({"path": f"{k}.png"} if with_path else {})} for k, b in enumerate(blobs)
    ]
    labels = data_.draw(
        st.lists(st.sampled_from(["good", "dent"]), min_size=n_rows, max_size=n_rows)
    )
    pq.write_table(pa.table({"image": pa.array(rows), "label": labels}), tmp_path / "lot.parquet")
    ds = load_or_refuse(tmp_path / "lot.parquet")
    assert ds is None or kind in {"png", "damaged png", "bytes"}


LABEL_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
    min_size=1,
    max_size=25,
).filter(lambda s: s.strip() != "")
"""Any printable label a person could type: digits with leading zeros, 20-digit codes,
NA, null, quotes, commas, Japanese, emoji, spaces around it."""

ODD_LABELS = st.one_of(
    LABEL_TEXT,
    st.integers(-(2**80), 2**80).map(str),
    st.integers(0, 999).map(lambda k: f"{k:03d}"),
    st.sampled_from(["NA", "N/A", "null", "None", "NaN", "nan", "#N/A", "TRUE", "1.0", "1e3"]),
)


@st.composite
def labelled_tables(draw) -> tuple[list[str], np.ndarray]:
    """Labels of odd text and finite float32 features: a table that must load."""
    n_rows = draw(st.integers(1, 12))
    pool = draw(st.lists(ODD_LABELS, min_size=1, max_size=5, unique=True))
    labels = draw(st.lists(st.sampled_from(pool), min_size=n_rows, max_size=n_rows))
    finite = st.floats(-(2.0**100), 2.0**100, width=32)
    features = draw(hnp.arrays(np.float32, (n_rows, draw(st.integers(1, 4))), elements=finite))
    return labels, features


def _loaded_labels(ds) -> list[str]:
    names = data.label_names(ds)
    return [names[k] for k in data.to_arrays(ds)[1]]


@BUDGET
@given(
    table=labelled_tables(),
    how=st.sampled_from(["csv", "csv-bom", "tsv", "parquet"]),
    end=LINE_ENDS,
)
def test_labels_are_read_as_written(tmp_path, table, how, end):
    """No label is merged, renamed, cast or taken for a missing value; only surrounding
    spaces are dropped, and they merge nothing here (the pool's stripped texts may
    coincide, which is what the comparison allows)."""
    labels, features = table
    frame = pd.DataFrame(features, columns=[f"f{k}" for k in range(features.shape[1])])
    frame.insert(0, "label", labels)
    if how == "parquet":
        path = tmp_path / "lot.parquet"
        frame.to_parquet(path)
    else:
        path = tmp_path / ("lot.tsv" if how == "tsv" else "lot.csv")
        encoding = "utf-8-sig" if how == "csv-bom" else "utf-8"
        sep = "\t" if how == "tsv" else ","
        frame.to_csv(path, index=False, sep=sep, encoding=encoding, lineterminator=end)
    ds = data.load_dataset(path)
    assert_valid(ds)
    assert _loaded_labels(ds) == [label.strip() for label in labels]
    np.testing.assert_array_equal(data.to_arrays(ds)[0], features)


@BUDGET
@given(
    labels=st.lists(st.integers(-(2**63), 2**64 - 1), min_size=1, max_size=10),
    unsigned=st.booleans(),
)
def test_integer_labels_of_any_width_never_merge(tmp_path, labels, unsigned):
    kind = pa.uint64() if unsigned else pa.int64()
    labels = [v for v in labels if (v >= 0 if unsigned else v < 2**63)] or [0]
    values = pa.array(labels, kind)
    features = np.arange(len(labels), dtype=np.float32)
    pq.write_table(pa.table({"label": values, "a": features}), tmp_path / "lot.parquet")
    np.savez(tmp_path / "lot.npz", X=features[:, None], y=values.to_numpy())
    for suffix in (".parquet", ".npz"):
        ds = data.load_dataset(tmp_path / f"lot{suffix}")
        assert_valid(ds)
        assert data.label_names(ds) == [str(v) for v in sorted(set(labels))]
        assert _loaded_labels(ds) == [str(v) for v in labels]


# --- zips -----------------------------------------------------------------------------------

SEGMENTS = st.one_of(
    st.sampled_from(["good", "dent", "good", "dent", "scratch", "lot", "a b", "良品"]),
    st.sampled_from(["..", ".", "", "__MACOSX", ".hidden", "C:", "Thumbs.db"]),
    st.text(alphabet=string.ascii_letters + string.digits + "._-\\ ", min_size=1, max_size=6),
)
MEMBER_NAMES = st.builds(
    lambda parts, suffix: "/".join(parts) + suffix,
    st.lists(SEGMENTS, min_size=1, max_size=4),
    st.sampled_from([".png", ".png", ".PNG", ".jpg", ".bmp", ".txt", ""]),
)
PAYLOADS = st.one_of(
    st.builds(png, st.integers(1, 9), st.integers(1, 9), st.integers(0, 255)),
    st.builds(png, st.integers(1, 200), st.integers(1, 200)),  # 16 of these pass the budget
    st.builds(
        lambda h, w, cut: png(h, w)[:cut], st.integers(1, 9), st.integers(1, 9), st.integers(0, 80)
    ),
    st.binary(max_size=64),
)
SAFE_MEMBERS = st.tuples(
    st.builds(
        lambda folder, k: f"{folder}/{k}.png", st.sampled_from(["good", "dent"]), st.integers()
    ),
    st.builds(png, st.integers(1, 9), st.integers(1, 9), st.integers(0, 255)),
)


@pytest.mark.filterwarnings("ignore:Duplicate name")  # zipfile warns; the reader decides
@BUDGET
@given(
    members=st.lists(
        st.one_of(SAFE_MEMBERS, st.tuples(MEMBER_NAMES, PAYLOADS)), min_size=0, max_size=8
    ),
    compression=st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]),
)
def test_random_zips(tmp_path, members, compression):
    path = tmp_path / "lot.zip"
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, payload in members:
            zf.writestr(name, payload)
    ds = load_or_refuse(path)
    if ds is not None:  # every class is the name of a folder that holds an image
        folders = {part for name, _ in members for part in name.split("/")[:-1]}
        assert set(data.label_names(ds)) <= folders
        assert not any(".." in name.split("/") for name, _ in members)


# --- .npz -----------------------------------------------------------------------------------

DTYPES = st.sampled_from(
    [np.float32, np.float64, np.float16, np.int8, np.int64, np.uint64, np.bool_, "U3", "S3"]
)


@st.composite
def npz_arrays(draw) -> dict[str, np.ndarray]:
    """X, y and maybe label_names: usually the right kinds, sometimes random dtypes and
    shapes (zero sizes included), sometimes an array left out."""
    n_rows = draw(st.integers(0, 5))
    x_shape = (n_rows, *draw(st.lists(st.integers(0, 4), min_size=0, max_size=3)))
    y_shape = draw(st.sampled_from([(n_rows,), (n_rows,), (n_rows + 1,), ()]))
    if draw(st.booleans()):  # finite float64 features, as a real file holds
        X = draw(hnp.arrays(np.float64, x_shape, elements=st.floats(-1e6, 1e6)))
    else:
        X = draw(hnp.arrays(draw(DTYPES), x_shape))
    y_dtype = draw(st.one_of(st.just(np.int64), DTYPES))
    arrays = {"X": X, "y": draw(hnp.arrays(y_dtype, y_shape))}
    if draw(st.booleans()):
        names_dtype = draw(st.one_of(st.just("U5"), DTYPES))
        arrays["label_names"] = draw(hnp.arrays(names_dtype, draw(st.integers(0, 4))))
    if draw(st.integers(0, 4)) == 0:
        del arrays[draw(st.sampled_from(sorted(arrays)))]
    return arrays


@BUDGET
@given(arrays=npz_arrays(), compressed=st.booleans())
def test_random_npz(tmp_path, arrays, compressed):
    path = tmp_path / "lot.npz"
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    load_or_refuse(path)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".npz", ".zip"])
def test_an_unreadable_file_is_refused_by_name(tmp_path, suffix):
    """What the properties rely on: a refusal is a DataError that names the file."""
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(b"\x00\xff" * 10)
    with pytest.raises(DataError, match=rf"broken\{suffix}"):
        data.load_dataset(path)
