"""soartlab.io: one reader per suffix, all with the same contract, found by load_dataset."""

import base64
import csv
import inspect
import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image, UnidentifiedImageError

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
    (tmp_path / "lot.sav").write_bytes(b"\xd0\xcf\x11\xe0")
    expected = r"'lot\.sav' has an unsupported file type '\.sav'; supported formats: " + ", ".join(
        s.replace(".", r"\.") for s in SUPPORTED_SUFFIXES
    )
    with pytest.raises(DataError, match=expected):
        data.load_dataset(tmp_path / "lot.sav")
    assert ".xlsx" in SUPPORTED_SUFFIXES and ".xls" not in SUPPORTED_SUFFIXES
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
    assert seen["options"] == {
        "image_size": (5, 6),
        "label_column": "label",
        "require_labels": True,
        "id_columns": None,
        "sheet": None,
    }
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


# --- whatever a library raises on a bad file becomes a DataError naming it ------------------


def _raise(exc: BaseException):
    def read(path: Path, limits: Limits, **_other_options) -> RawData:
        raise exc

    return read


@pytest.mark.parametrize(
    "exc",
    [
        RecursionError("maximum recursion depth exceeded"),
        OverflowError("int too large to convert to float"),
        MemoryError(),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        pa.ArrowInvalid("list_size needs to be a strict positive integer"),
        pa.ArrowNotImplementedError("Unsupported cast"),
        Image.DecompressionBombError("Image size (10000000000 pixels) exceeds limit"),
        UnidentifiedImageError("cannot identify image file"),
        zlib.error("Error -3 while decompressing data"),
        struct.error("unpack requires a buffer of 4 bytes"),
        csv.Error("new-line character seen in unquoted field"),
        zipfile.BadZipFile("Bad magic number for file header"),
        EOFError(),
        ValueError("could not convert"),
        TypeError("a bytes-like object is required, not 'str'"),
        KeyError("X"),
        IndexError("index 3 is out of bounds"),
        SyntaxError("not a PNG file"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_library_errors_become_a_data_error_naming_the_file(tmp_path, monkeypatch, exc):
    monkeypatch.setitem(READERS, ".dat", _raise(exc))
    (tmp_path / "lot.dat").write_bytes(b"anything")
    with pytest.raises(DataError, match=rf"'lot\.dat' cannot be read \({type(exc).__name__}"):
        data.load_dataset(tmp_path / "lot.dat")


def test_our_own_errors_and_our_bugs_pass_unchanged(tmp_path, monkeypatch):
    (tmp_path / "lot.dat").write_bytes(b"anything")
    monkeypatch.setitem(READERS, ".dat", _raise(DataError("row 7 is wrong")))
    with pytest.raises(DataError, match=r"^row 7 is wrong$"):
        data.load_dataset(tmp_path / "lot.dat")
    monkeypatch.setitem(READERS, ".dat", _raise(AttributeError("a bug, not a bad file")))
    with pytest.raises(AttributeError):
        data.load_dataset(tmp_path / "lot.dat")


def test_a_long_library_message_is_shortened(tmp_path, monkeypatch):
    monkeypatch.setitem(READERS, ".dat", _raise(ValueError("x" * 10_000)))
    (tmp_path / "lot.dat").write_bytes(b"anything")
    with pytest.raises(DataError) as caught:
        data.load_dataset(tmp_path / "lot.dat")
    assert len(str(caught.value)) < 400


# --- .npz headers and empty arrays ---------------------------------------------------------


def _npz_declaring(path: Path, shape_text: str) -> Path:
    """An .npz whose X.npy header declares ``shape_text`` (written raw: NumPy would refuse)."""
    header = f"{{'descr': '<f8', 'fortran_order': False, 'shape': {shape_text}, }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + bytes(64)
    y = io.BytesIO()
    np.save(y, np.arange(3))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("X.npy", npy)
        zf.writestr("y.npy", y.getvalue())
    return path


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        (f"({10**400}, 2)", r"array 'X' declares shape \(1000.*…\) \(about 10\^401 bytes\)"),
        (f"({2**40}, {2**40}, {2**40})", r"array 'X' declares shape .* but holds only"),
        ("(-5, 2)", r"array 'X' declares the shape \(-5, 2\), with a negative size"),
        ("(5.5, 2)", r"array 'X' \(ValueError: shape is not valid"),
        ("'many'", r"array 'X' \(ValueError"),
    ],
)
def test_npz_header_with_an_absurd_shape(tmp_path, shape, expected):
    path = _npz_declaring(tmp_path / "h.npz", shape)
    with pytest.raises(DataError, match=r"'h\.npz' is not a valid \.npz file: " + expected):
        data.load_dataset(path)


def test_npz_without_features_or_rows(tmp_path):
    np.savez(tmp_path / "c.npz", X=np.zeros((5, 0)), y=np.arange(5))
    with pytest.raises(DataError, match=r"'c\.npz' holds no features: .*shape \(5, 0\)"):
        data.load_dataset(tmp_path / "c.npz")
    np.savez(tmp_path / "i.npz", X=np.zeros((5, 3, 0)), y=np.arange(5))
    with pytest.raises(DataError, match=r"'i\.npz' holds no features"):
        data.load_dataset(tmp_path / "i.npz")
    np.savez(tmp_path / "r.npz", X=np.zeros((0, 3)), y=np.arange(0))
    with pytest.raises(DataError, match=r"'r\.npz' holds no data rows"):
        data.load_dataset(tmp_path / "r.npz")


# --- the image column of a Parquet file ----------------------------------------------------


def _png(shape=(4, 5), value=100) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full(shape, value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        (
            pa.array([{"bytes": base64.b64encode(_png()).decode(), "path": "a.png"}] * 2),
            r"holds string in its 'bytes' field; expected each image file's bytes \(binary\)",
        ),
        (pa.array([{"bytes": 7, "path": "a.png"}] * 2), r"holds int64 in its 'bytes' field"),
        (pa.array([{"bytes": [1, 2], "path": None}] * 2), r"holds list<.*> in its 'bytes'"),
        (pa.array([{"bytes": None, "path": "a.png"}] * 2), r"holds null in its 'bytes' field"),
        (pa.array([base64.b64encode(_png()).decode()] * 2), r"has type string; .*base64"),
        (pa.array([[1, 2], [3]]), r"has type list<.*>; expected the Hugging Face image layout"),
        (pa.array([_png()] * 2), r"has type binary; expected the Hugging Face image layout"),
        (pa.array([{"path": "a.png"}] * 2), r"has fields \['path'\]"),
    ],
)
def test_parquet_image_column_of_the_wrong_type(tmp_path, column, expected):
    pq.write_table(pa.table({"image": column, "label": [0, 1]}), tmp_path / "i.parquet")
    with pytest.raises(DataError, match=r"Column 'image' in 'i\.parquet' " + expected):
        data.load_dataset(tmp_path / "i.parquet")


def test_parquet_image_rows_that_are_null(tmp_path):
    image = pa.array(
        [{"bytes": _png(), "path": "a.png"}, None],
        pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
    )
    pq.write_table(pa.table({"image": image, "label": [0, 1]}), tmp_path / "i.parquet")
    with pytest.raises(DataError, match=r"Image 'i\.parquet row 2' has no embedded bytes"):
        data.load_dataset(tmp_path / "i.parquet")


# --- line ends ----------------------------------------------------------------------------


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_every_line_end_reads_the_same(tmp_path, end, suffix):
    sep = "\t" if suffix == ".tsv" else ","
    rows = [["label", "a", "b"], ["good", "1", "2"], ["dent", "3", "4"], ["good", "5", "6"]]
    path = tmp_path / f"t{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + end.join(sep.join(r) for r in rows).encode() + b"\r")
    ds = data.load_dataset(path)
    assert data.label_names(ds) == ["good", "dent"]
    np.testing.assert_array_equal(data.to_arrays(ds)[0], [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(data.to_arrays(ds)[1], [0, 1, 0])


def test_cr_line_ends_count_rows_and_name_lines(tmp_path):
    (tmp_path / "r.csv").write_bytes(b"label,a,b\rgood,1,2\rdent,3\rgood,4,5\r")
    with pytest.raises(DataError, match="line 3 has 2 fields; the header has 3"):
        data.load_dataset(tmp_path / "r.csv")
    (tmp_path / "n.csv").write_bytes(b"label,a\r" + b"good,1\r" * 11)
    with pytest.raises(DataError, match="has 11 data rows; the limit is 10 rows"):
        data.load_dataset(tmp_path / "n.csv", limits=Limits(max_rows=10))


# --- the decoded-pixel budget of an upload ------------------------------------------------


def test_default_pixel_budget():
    limits = Limits()
    assert 200_000 * 64 * 64 <= limits.max_total_pixels < 100 * 4096 * 4096


def _never_decode(monkeypatch):
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("an image was decoded"))


def test_zip_over_the_pixel_budget_refused_before_decoding(tmp_path, monkeypatch):
    with zipfile.ZipFile(tmp_path / "x.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for k in range(3):
            zf.writestr(f"{'good' if k else 'dent'}/{k}.png", _png())
    _never_decode(monkeypatch)
    with pytest.raises(
        DataError,
        match=r"'x\.zip' holds 3 images of 60 pixels in all; the limit is 59 pixels per upload\. "
        r"Nothing was decoded\. Resize the images",
    ):
        data.load_dataset(tmp_path / "x.zip", limits=Limits(max_total_pixels=59))


def test_zip_of_huge_flat_pngs_refused_with_default_limits(tmp_path, monkeypatch):
    """4096² PNGs of one colour compress to a few KB each: the zip is small, decoding is not."""
    flat = _png((4096, 4096), 7)
    assert len(flat) < 64 * 1024
    with zipfile.ZipFile(tmp_path / "x.zip", "w", zipfile.ZIP_STORED) as zf:
        for k in range(100):
            zf.writestr(f"{'good' if k % 2 else 'dent'}/{k}.png", flat)
    _never_decode(monkeypatch)
    with pytest.raises(DataError, match=r"100 images of 1,677,721,600 pixels in all"):
        data.load_dataset(tmp_path / "x.zip")


def test_image_parquet_over_the_pixel_budget_refused_before_decoding(tmp_path, monkeypatch):
    image = pa.array([{"bytes": _png(), "path": f"{k}.png"} for k in range(3)])
    pq.write_table(pa.table({"image": image, "label": [0, 1, 0]}), tmp_path / "i.parquet")
    _never_decode(monkeypatch)
    with pytest.raises(DataError, match=r"'i\.parquet' holds 3 images of 60 pixels in all"):
        data.load_dataset(tmp_path / "i.parquet", limits=Limits(max_total_pixels=59))
