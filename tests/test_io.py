"""soartlab.io: one reader per suffix, all with the same contract, found by load_dataset."""

import inspect
from pathlib import Path

import numpy as np
import pytest

from soartlab import data
from soartlab.errors import DataError
from soartlab.io import READERS, SUPPORTED_SUFFIXES, Limits, RawData, reader_for

DOCUMENTED_SUFFIXES = {".csv", ".tsv", ".parquet", ".npz", ".zip"}  # DESIGN.md's formats


def test_registry_covers_every_supported_suffix():
    assert DOCUMENTED_SUFFIXES <= set(SUPPORTED_SUFFIXES)
    for suffix in SUPPORTED_SUFFIXES:
        assert suffix == suffix.lower() and suffix.startswith("."), suffix
        assert reader_for(Path(f"lot{suffix.upper()}")) is READERS[suffix]


@pytest.mark.parametrize("suffix", sorted(READERS))
def test_every_reader_has_the_reader_signature(suffix):
    """(path, limits, **options) -> RawData, with the options it uses keyword-only, so that
    load_dataset can call every reader the same way."""
    parameters = list(inspect.signature(READERS[suffix]).parameters.values())
    assert [p.name for p in parameters[:2]] == ["path", "limits"]
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in parameters[:2])
    rest = [p.kind for p in parameters[2:]]
    assert rest and rest[-1] is inspect.Parameter.VAR_KEYWORD
    assert all(kind is inspect.Parameter.KEYWORD_ONLY for kind in rest[:-1])
    assert inspect.signature(READERS[suffix]).return_annotation in (RawData, "RawData")


def test_unknown_suffix_lists_the_supported_ones(tmp_path):
    (tmp_path / "lot.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    expected = r"'lot\.xls' has an unsupported file type '\.xls'; supported formats: " + ", ".join(
        s.replace(".", r"\.") for s in SUPPORTED_SUFFIXES
    )
    with pytest.raises(DataError, match=expected):
        data.load_dataset(tmp_path / "lot.xls")
    with pytest.raises(DataError, match=r"'README' has an unsupported file type '\(none\)'"):
        reader_for(Path("README"))


def test_a_new_format_is_one_registered_function(tmp_path, monkeypatch):
    """load_dataset finds a reader by suffix alone, and checks and builds what it returns."""
    seen = {}

    def read_dat(path: Path, limits: Limits, *, image_size, **_other_options) -> RawData:
        seen["options"] = {"image_size": image_size, **_other_options}
        samples = np.arange(24, dtype=np.float64).reshape(4, 2, 3)
        return RawData(samples, np.array(["ok", "ng", "ok", "ng"]), image_shape=(2, 3))

    monkeypatch.setitem(READERS, ".dat", read_dat)
    (tmp_path / "lot.dat").write_bytes(b"anything")
    ds = data.load_dataset(tmp_path / "lot.dat", image_size=(5, 6))
    assert seen["options"] == {"image_size": (5, 6), "label_column": "label", "require_labels": True}
    assert data.label_names(ds) == ["ok", "ng"] and data.input_shape(ds) == (2, 3)
    np.testing.assert_array_equal(data.to_arrays(ds)[0], np.arange(24).reshape(4, 6))

    def read_bad(path: Path, limits: Limits, **_other_options) -> RawData:
        return RawData(np.array([[1.0, np.nan]]), np.array([0]), columns=["a", "b"])

    monkeypatch.setitem(READERS, ".dat", read_bad)
    with pytest.raises(DataError, match=r"rows 1 \(counted from 1\).*column 'b'"):
        data.load_dataset(tmp_path / "lot.dat")


def test_limits_is_still_reachable_from_data():
    assert data.Limits is Limits


def test_csv_reader_notes_the_encoding(tmp_path):
    (tmp_path / "a.csv").write_text("label,x\ngood,1\n", encoding="utf-8")
    (tmp_path / "b.csv").write_text("label,x\ngood,1\n", encoding="utf-8-sig")
    options = {"label_column": "label", "image_size": (2, 2), "require_labels": True}
    assert READERS[".csv"](tmp_path / "a.csv", Limits(), **options).notes == {"encoding": "utf-8"}
    raw = READERS[".csv"](tmp_path / "b.csv", Limits(), **options)
    assert raw.notes == {"encoding": "utf-8-sig"} and raw.columns == ["x"]
